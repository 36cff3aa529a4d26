"""microvm.lazy_providers: lazy provider imports change nothing but speed (issue 4).

Each check runs in a fresh Python (a subprocess): what is being tested is the first import of a provider package,
which can happen only once per process. About a minute in total, mostly the two runs that import providers eagerly.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOGLE = "cdktf_cdktf_provider_google"
KUBERNETES = "cdktf_cdktf_provider_kubernetes"
QUIET = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CHECKPOINT_DISABLE": "1"}


def run(args: list[str], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "MICROVM_LAZY_PROVIDERS"}
    full_env.update(env)
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def probe(code: str, **env: str) -> dict:
    """Runs `code` in a fresh interpreter; it prints one JSON object as its last line."""
    proc = run([sys.executable, "-c", textwrap.dedent(code)], **{**QUIET, **env})
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


def package_all(package: str) -> list[str]:
    """The real package's __all__ (its submodules), read from its __init__ without running it."""
    init = Path(importlib.util.find_spec(package).origin)
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__all__":
            return ast.literal_eval(node.value)
    raise AssertionError(f"no __all__ in {init}")


def loaded(package: str) -> str:
    """Python expression: how many submodules of `package` are imported (publication's `_private` twins excluded)."""
    return (f"len([m for m in sys.modules if m.startswith('{package}.') and m.count('.') == 1 "
            f"and not m.split('.')[1].startswith('_')])")


# (a) ---------------------------------------------------------------------------------------------------------------

def test_synth_is_byte_identical_with_and_without_lazy_loading(tmp_path):
    assert (ROOT / "main.py").is_file(), "main.py (the app, stacks 'cluster' and 'desktop') is missing"
    # Both runs read the same snapshot of the app and of the microvm package (found first, beside main.py): the
    # image/ folder is hashed into the JSON, and a tree being edited must not make the two runs differ.
    app = tmp_path / "app"
    app.mkdir()
    for f in list(ROOT.glob("*.py")) + [ROOT / "cdktf.json"]:
        shutil.copy2(f, app)
    for folder, target in ((ROOT / "image", "image"), (ROOT / "constructs" / "microvm", "microvm")):
        if folder.is_dir():
            shutil.copytree(folder, app / target, ignore=shutil.ignore_patterns("__pycache__"))

    outputs = {}
    for lazy in ("1", "0"):
        outdir = tmp_path / f"out-{lazy}"
        run([sys.executable, "main.py"], cwd=app, MICROVM_LAZY_PROVIDERS=lazy, CDKTF_OUTDIR=str(outdir), **QUIET)
        outputs[lazy] = {p.relative_to(outdir): p.read_bytes() for p in outdir.glob("stacks/*/cdk.tf.json")}

    assert outputs["1"].keys() == outputs["0"].keys()
    assert outputs["1"], "no stack was synthesized"
    for name, content in outputs["1"].items():
        assert content == outputs["0"][name], f"{name} differs between lazy and normal provider loading"
        assert json.loads(content).get("resource"), f"{name} has no resources"


# (b) ---------------------------------------------------------------------------------------------------------------

def test_submodule_not_imported_yet_is_an_attribute_and_package_is_lazy():
    env = {k: v for k, v in QUIET.items() if k != "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"}
    out = probe(f"""
        import json, os, sys
        import microvm
        from microvm import lazy_providers
        import {GOOGLE} as google, {KUBERNETES} as kubernetes
        before = "{GOOGLE}.compute_instance" in sys.modules
        lazy_providers.install()  # again: idempotent
        cls = google.compute_instance.ComputeInstance
        from jsii import _reference_map
        print(json.dumps({{
            "preloaded": before,
            "cls": cls.__module__ + "." + cls.__qualname__,
            "jsii_type": cls.__jsii_type__,
            "same_module": sys.modules["{GOOGLE}"] is google,
            "google_lazy": google.__getattr__.__module__ == "microvm.lazy_providers",
            "kubernetes_lazy": kubernetes.__getattr__.__module__ == "microvm.lazy_providers",
            "google_loaded": {loaded(GOOGLE)},
            "kubernetes_loaded": {loaded(KUBERNETES)},
            "google_all": google.__all__,
            "kubernetes_all": kubernetes.__all__,
            "in_dir": "container_cluster" in dir(google),
            "unknown_attr": hasattr(google, "no_such_module"),
            "fqn_map": {{k: v for k, v in _reference_map._submodule_fqn_map.items() if "/provider-" in k}},
            "silence": os.environ.get("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"),
        }}))
    """, **env)
    assert not out["preloaded"], "pick another submodule: microvm itself imports compute_instance now"
    assert out["cls"] == f"{GOOGLE}.compute_instance.ComputeInstance"
    assert out["jsii_type"] == "@cdktf/provider-google.computeInstance.ComputeInstance"
    assert out["same_module"] and out["google_lazy"] and out["kubernetes_lazy"]
    # microvm's own constructs import a few dozen submodules at most, against ~1470 + ~109 for the normal import.
    assert out["google_loaded"] < 100 and out["kubernetes_loaded"] < 50, out
    # The stand-in advertises what the real package does: __all__, dir(), no extra attributes.
    assert out["google_all"] == package_all(GOOGLE)
    assert out["kubernetes_all"] == package_all(KUBERNETES)
    assert out["in_dir"] and not out["unknown_attr"]
    # Every submodule is resolvable by jsii: one FQN map entry each.
    assert len(out["fqn_map"]) == len(out["google_all"]) + len(out["kubernetes_all"])
    assert out["fqn_map"]["@cdktf/provider-google.computeInstance"] == f"{GOOGLE}.compute_instance"
    # Importing microvm (which starts the jsii kernel) silences Node 20's end-of-life banner by itself.
    assert out["silence"] == "20"
    assert "end-of-life" not in out["stderr"], out["stderr"]


def test_fqn_map_matches_the_assemblies_submodules():
    """snake_case module names -> the assembly's camelCase submodule names, one to one, for both providers."""
    from microvm.lazy_providers import PROVIDERS, _camel

    for package, assembly in PROVIDERS.items():
        jsii_dir = Path(importlib.util.find_spec(package).submodule_search_locations[0]) / "_jsii"
        (tarball,) = glob.glob(str(jsii_dir / "*.jsii.tgz"))
        with tarfile.open(tarball) as tar:
            text = tar.extractfile("package/.jsii").read().decode()
        # Parse only the top-level "submodules" object (the whole assembly is ~100 MB of JSON).
        start = text.index('\n  "submodules": {') + len('\n  "submodules": ')
        submodules, _ = json.JSONDecoder().raw_decode(text, start)
        assert {f"{assembly}.{_camel(name)}" for name in package_all(package)} == set(submodules)


# (c) ---------------------------------------------------------------------------------------------------------------

def test_type_only_the_js_side_returns_resolves():
    """A google object created on the JS side, of a class from a submodule nobody imported, handed to Python.

    These providers' own getters only return classes of the module that returned them (already imported), so the
    case arises when the JS side creates provider constructs itself, as a jsii construct library does, and Python
    gets them back, e.g. through `node.find_child`. Reproduced here with a raw kernel `create`. Without the FQN map
    the jsii runtime has no way to find the module and fails with "Unknown type"; with it, it imports it.
    """
    out = probe(f"""
        import json, sys
        import microvm
        import jsii
        from jsii import _reference_map
        from jsii._kernel import _make_reference_for_native
        from jsii._kernel.types import CreateRequest
        from cdktf import App, TerraformStack
        from {GOOGLE}.provider import GoogleProvider

        stack = TerraformStack(App(), "s")
        GoogleProvider(stack, "google", project="p")
        kernel = jsii.kernel
        preloaded = "{GOOGLE}.pubsub_topic" in sys.modules
        for name in ("first", "second"):
            kernel.provider.create(CreateRequest(
                fqn="@cdktf/provider-google.pubsubTopic.PubsubTopic",
                args=_make_reference_for_native(kernel, [stack, name, {{"name": name}}])))

        saved = dict(_reference_map._submodule_fqn_map)
        for fqn in [k for k in saved if k.startswith("@cdktf/provider-google.")]:
            del _reference_map._submodule_fqn_map[fqn]
        try:
            stack.node.find_child("first")
            without = "resolved"
        except Exception as error:
            without = f"{{type(error).__name__}}: {{error}}"
        _reference_map._submodule_fqn_map.update(saved)

        topic = stack.node.find_child("second")
        print(json.dumps({{
            "preloaded": preloaded,
            "without_map": without,
            "with_map": type(topic).__module__ + "." + type(topic).__qualname__,
            "same_class": type(topic) is sys.modules["{GOOGLE}.pubsub_topic"].PubsubTopic,
            "usable": topic.friendly_unique_id,
        }}))
    """)
    assert not out["preloaded"], "pick another submodule: microvm itself imports pubsub_topic now"
    assert out["without_map"] == "ValueError: Unknown type: @cdktf/provider-google.pubsubTopic.PubsubTopic"
    assert out["with_map"] == f"{GOOGLE}.pubsub_topic.PubsubTopic"
    assert out["same_class"] and out["usable"] == "second"


# (d) ---------------------------------------------------------------------------------------------------------------

def test_switched_off_imports_the_normal_packages():
    out = probe(f"""
        import json, sys
        import microvm
        import {GOOGLE} as google, {KUBERNETES} as kubernetes
        print(json.dumps({{
            "lazy": [hasattr(m, "__getattr__") for m in (google, kubernetes)],
            "published": [hasattr(m, "_private") for m in (google, kubernetes)],  # the real __init__ ran
            "google_loaded": {loaded(GOOGLE)},
            "kubernetes_loaded": {loaded(KUBERNETES)},
        }}))
    """, MICROVM_LAZY_PROVIDERS="0")
    assert out["lazy"] == [False, False]
    assert out["published"] == [True, True]
    assert out["google_loaded"] == len(package_all(GOOGLE))
    assert out["kubernetes_loaded"] == len(package_all(KUBERNETES))


# (e) ---------------------------------------------------------------------------------------------------------------

def test_no_op_for_a_provider_imported_normally_before_microvm():
    out = probe(f"""
        import json, sys
        import {KUBERNETES} as kubernetes  # before microvm: the normal, eager import
        import microvm
        from microvm import lazy_providers
        lazy_providers.install()
        import {GOOGLE} as google
        print(json.dumps({{
            "kubernetes_untouched": sys.modules["{KUBERNETES}"] is kubernetes,
            "kubernetes_lazy": hasattr(kubernetes, "__getattr__"),
            "kubernetes_published": hasattr(kubernetes, "_private"),
            "kubernetes_loaded": {loaded(KUBERNETES)},
            "kubernetes_in_map": any(k.startswith("@cdktf/provider-kubernetes.")
                                     for k in __import__("jsii")._reference_map._submodule_fqn_map),
            "google_lazy": google.__getattr__.__module__ == "microvm.lazy_providers",
        }}))
    """)
    assert out["kubernetes_untouched"] and out["kubernetes_published"] and not out["kubernetes_lazy"]
    assert out["kubernetes_loaded"] == len(package_all(KUBERNETES))
    assert not out["kubernetes_in_map"]
    assert out["google_lazy"], "the other provider is still made lazy"


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_switch_values(monkeypatch, value):
    from microvm import lazy_providers

    monkeypatch.setenv("MICROVM_LAZY_PROVIDERS", value)
    assert not lazy_providers.enabled()
    monkeypatch.setenv("MICROVM_LAZY_PROVIDERS", "1")
    assert lazy_providers.enabled()
    monkeypatch.delenv("MICROVM_LAZY_PROVIDERS")
    assert lazy_providers.enabled()
