"""`make synth` runs the real cdktf CLI: prove it produces both stacks, quietly, with no flags or credentials."""

from __future__ import annotations

import json
import os
import subprocess

from tests.synth import ROOT


def test_cdktf_synth_writes_both_stacks():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GOOGLE_", "CLOUDSDK_", "TF_VAR_", "JSII_SILENCE"))}
    env["CI"] = "1"
    result = subprocess.run(
        ["make", "--no-print-directory", "synth"], cwd=ROOT, env={**env},
        capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    manifest = json.loads((ROOT / "cdktf.out" / "manifest.json").read_text())
    assert sorted(manifest["stacks"]) == ["cluster", "desktop"]
    for name in ("cluster", "desktop"):
        stack = json.loads((ROOT / "cdktf.out" / "stacks" / name / "cdk.tf.json").read_text())
        assert stack["resource"], name
        assert f"cdktf.out/stacks/{name}/cdk.tf.json" in result.stdout
    assert "cdktf deploy cluster desktop" in result.stdout
    # Nothing but our own lines: no end-of-life banner, no terraform configuration warnings.
    for noise in ("end-of-life", "End-of-life", "Unable to open CLI configuration", "Traceback"):
        assert noise not in output, noise
