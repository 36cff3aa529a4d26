"""The README opens with the smallest working example: it must synthesize as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.synth import ROOT


def test_readme_example_synthesizes(tmp_path):
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(example)
    env = {**os.environ, "CDKTF_OUTDIR": str(tmp_path / "out"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    stacks = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "out" / "stacks").glob("*/cdk.tf.json")}
    assert sorted(stacks) == ["cluster", "desktop"]
    assert "google_container_cluster" in stacks["cluster"]["resource"]
    assert "kubernetes_deployment_v1" in stacks["desktop"]["resource"]
