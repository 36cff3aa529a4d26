"""Synthesize the app (or a user's stack) the way `cdktf synth` does, and read the JSON back.

Used by the stack tests: the full app synth resolves cross-stack references (remote state), which
`Testing.synth` of a single stack does not. Metadata ("//") is dropped and the project folder is
replaced by "<root>", so snapshots hold no machine paths.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_IMAGE = "tests/fixtures/image"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import microvm  # noqa: E402,F401  (lazy provider loading before cdktf providers are imported)
from cdktf import App, Testing  # noqa: E402

Testing.__test__ = False


def synth_app(build: Callable[[App], Any], context: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """Run `build(app)` in a fresh App, synthesize it to a temporary folder, return {stack: json}."""
    with tempfile.TemporaryDirectory() as outdir:
        app = App(outdir=outdir, context=dict(context or {}), skip_validation=False)
        cwd = os.getcwd()
        os.chdir(ROOT)  # relative paths (the image context) as `cdktf synth` sees them
        try:
            build(app)
            app.synth()
        finally:
            os.chdir(cwd)
        stacks = {}
        for path in sorted(Path(outdir, "stacks").glob("*/cdk.tf.json")):
            text = path.read_text().replace(str(ROOT), "<root>")
            stacks[path.parent.name] = _strip_metadata(json.loads(text))
        return stacks


def synth_main(context: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """The app in main.py, with the stand-in image context unless the context names another."""
    import main

    return synth_app(main.build, {"imageContext": FIXTURE_IMAGE, **(context or {})})


def resources(stack: dict, type_: str) -> list[dict]:
    return list(stack.get("resource", {}).get(type_, {}).values())


def one(stack: dict, type_: str) -> dict:
    found = resources(stack, type_)
    assert len(found) == 1, f"expected one {type_}, found {len(found)}"
    return found[0]


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def _strip_metadata(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_metadata(v) for k, v in value.items() if k != "//"}
    if isinstance(value, list):
        return [_strip_metadata(v) for v in value]
    return value
