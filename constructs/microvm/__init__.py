"""Micro-VM: an always-warm Linux desktop in the browser on GKE Autopilot, as cdktf constructs.

    from microvm import AutopilotCluster, DesktopImage, WarmDesktopService
"""

import importlib

# Before anything imports a provider package: load only the provider submodules a stack uses.
from microvm import lazy_providers as _lazy_providers

_lazy_providers.install()

# The public names, loaded on first use (PEP 562): `import microvm` alone, or `microvm.contract`, does not
# start the jsii runtime, so tools that only need the contract or print a summary start in milliseconds.
_EXPORTS = {
    "AutopilotCluster": "microvm.cluster",
    "ExistingNetwork": "microvm.cluster",
    "MaintenanceWindow": "microvm.cluster",
    "NetworkRanges": "microvm.cluster",
    "WarmDesktopService": "microvm.desktop",
    "ConfigError": "microvm.errors",
    "DesktopImage": "microvm.image",
    "HttpsProbe": "microvm.probes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'microvm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
