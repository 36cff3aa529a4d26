"""Micro-VM: an always-warm Linux desktop in the browser on GKE Autopilot, as cdktf constructs.

    from microvm import AutopilotCluster, DesktopImage, WarmDesktopService
"""

# Before anything imports a provider package: load only the provider submodules a stack uses.
from microvm import lazy_providers as _lazy_providers

_lazy_providers.install()

from microvm.cluster import AutopilotCluster, ExistingNetwork, MaintenanceWindow, NetworkRanges  # noqa: E402
from microvm.desktop import WarmDesktopService  # noqa: E402
from microvm.errors import ConfigError  # noqa: E402
from microvm.image import DesktopImage  # noqa: E402
from microvm.probes import HttpsProbe  # noqa: E402

__all__ = [
    "AutopilotCluster",
    "ConfigError",
    "DesktopImage",
    "ExistingNetwork",
    "HttpsProbe",
    "MaintenanceWindow",
    "NetworkRanges",
    "WarmDesktopService",
]
