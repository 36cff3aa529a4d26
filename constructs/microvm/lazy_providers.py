"""Load only the provider submodules a stack uses (fast synth).

The prebuilt provider packages (``cdktf_cdktf_provider_google`` 16.12.1, ``cdktf_cdktf_provider_kubernetes``
12.1.1) are frozen: their package ``__init__`` imports every resource module of the provider (~1470 for google)
before the one a stack asked for. That costs ~20 s and ~600 MB in Python for a stack that uses a dozen resources.
``install()`` registers, before any provider import, a stand-in package module for each provider that has the real
package's ``__path__`` but never runs its ``__init__``; submodules then load one by one, on first use.

It is active as soon as ``microvm`` is imported (``microvm/__init__.py`` calls ``install()`` first thing).
Users notice nothing except speed: ``cdktf_cdktf_provider_google.compute_instance.ComputeInstance`` still works
without importing ``compute_instance`` first, ``from ... import *`` and ``dir()`` still list every submodule.

Environment:
    MICROVM_LAZY_PROVIDERS=0   switch it off (also ``false``, ``no``, ``off``): provider packages import normally,
                               exactly as without microvm. Use it to rule this module out when debugging.
                               Read once, when microvm is first imported.
    JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION
                               set to ``20`` unless already set, so Node 20's end-of-life banner does not open
                               every synth (also with MICROVM_LAZY_PROVIDERS=0).

It does nothing for a provider package that was imported before ``microvm`` (that import already paid the cost,
and replacing a live module would split its users between two module objects).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
import types

ENV_SWITCH = "MICROVM_LAZY_PROVIDERS"

# Python package -> jsii assembly name. Only packages known to need it and known to follow the layout below.
PROVIDERS = {
    "cdktf_cdktf_provider_google": "@cdktf/provider-google",
    "cdktf_cdktf_provider_kubernetes": "@cdktf/provider-kubernetes",
}

_installed = False


def enabled() -> bool:
    """False when MICROVM_LAZY_PROVIDERS asks for the normal, eager provider import."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def install() -> None:
    """Register the lazy stand-ins for the provider packages not imported yet. Safe to call any number of times."""
    global _installed
    # jsii's node kernel inherits the environment when it starts (on the first jsii call, typically
    # `import cdktf`), so this must happen before that. Node 20 is past end of life: without it every
    # synth starts with a 12-line banner. A user's own value wins.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if _installed or not enabled():
        return
    _installed = True
    try:
        from jsii import _reference_map
    except ImportError:  # no jsii, hence no provider to speed up
        return
    # jsii's on-demand import of not-yet-imported types (_try_import_type_module, fed by _submodule_fqn_map,
    # jsii >= 1.1xx) is what makes the stand-in safe. A jsii without it would fail on some values returned by
    # the JS side ("Unknown type"): then keep the slow but correct import.
    if not (hasattr(_reference_map, "_try_import_type_module") and hasattr(_reference_map, "_submodule_fqn_map")):
        return
    for package, assembly in PROVIDERS.items():
        _install_one(package, assembly, _reference_map._submodule_fqn_map)


def _install_one(package: str, assembly: str, fqn_map: dict) -> None:
    if package in sys.modules:  # imported already (normally, or by an earlier install): leave it alone
        return
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:  # not installed
        return
    # The real __init__ starts with `__path__ = extend_path(__path__, __name__)`; same search path here, so
    # `import package.x` finds exactly the files it would have found.
    path = pkgutil.extend_path(list(spec.submodule_search_locations), package)
    submodules = sorted(
        entry.name
        for location in path
        if os.path.isdir(location)
        for entry in os.scandir(location)
        if entry.is_dir() and entry.name.isidentifier() and not entry.name.startswith("_")
    )

    module = types.ModuleType(package, _read_docstring(spec.origin))
    # What the real package exposes after its `publication.publish()`: its submodules (listed in __all__) and
    # the import-system dunders. Its helpers (check_type, ...) are hidden there too, so nothing else is needed.
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__file__ = spec.origin
    module.__cached__ = spec.cached
    module.__package__ = package
    module.__path__ = path
    module.__all__ = submodules
    known = frozenset(submodules)

    def __getattr__(name: str):
        # PEP 562: called only for names not set yet. Importing a submodule also sets it as an attribute of
        # this module (the import system does that), so this runs once per submodule.
        if name in known:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(module.__dict__) | known)

    module.__getattr__ = __getattr__
    module.__dir__ = __dir__

    # jsii builds a Python object for every object the JS side hands back, looked up by the JS class name
    # (e.g. "@cdktf/provider-google.computeInstance.ComputeInstanceBootDiskOutputReference"); a class is only
    # known once its module was imported. For lazily generated packages jsii imports the missing module through
    # this map (jsii._reference_map._try_import_type_module); these packages predate that and never fill it.
    # Without it jsii would try the root package (this stand-in, a no-op) and fail with "Unknown type".
    # The assembly's submodule names are the Python ones in camelCase, one to one (checked by the tests).
    for name in submodules:
        fqn_map.setdefault(f"{assembly}.{_camel(name)}", f"{package}.{name}")

    # Nothing else from the real __init__ is needed up front: loading the jsii assembly into the kernel
    # (`from ._jsii import *`) happens anyway with the first submodule, which does `from .._jsii import *`.
    sys.modules[package] = module


def _camel(snake: str) -> str:
    """compute_instance_v2 -> computeInstanceV2: the inverse of jsii-pacmak's naming of Python submodules."""
    first, *rest = snake.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _read_docstring(origin: str | None) -> str | None:
    """The package docstring (its README), for help(); read as text so nothing of the __init__ runs."""
    if not origin:
        return None
    try:
        with open(origin, encoding="utf-8") as source:
            head = source.read(64 * 1024)
    except OSError:
        return None
    for quote in ("r'''", "'''", 'r"""', '"""'):
        if head.startswith(quote):
            end = head.find(quote.lstrip("r"), len(quote))
            return head[len(quote) : end] if end > 0 else None
    return None
