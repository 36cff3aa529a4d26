"""The IaC scanners over what the app really produces: Checkov and hadolint, zero failed checks.

- Checkov `terraform_json` over both synthesized stacks (cdk.tf.json, as `python main.py` writes them).
- Checkov `kubernetes` over Kubernetes manifests rendered from the desktop stack's kubernetes_*_v1
  resources. Checkov's Terraform framework runs only a subset of its Kubernetes checks on those resources
  (no high UID, seccomp, service-account-token or root-container checks); the manifests get all of them.
- Checkov `dockerfile` and hadolint over image/Dockerfile.

Skips live in one place per tool: .checkov.yaml and .hadolint.yaml at the repository root, each with its
reason (docs/security.md lists them). hadolint runs with --disable-ignore-pragma, so an inline
`# hadolint ignore=` in the Dockerfile can not hide a finding. The scanners come from their own pinned,
hashed venv (tools/scanners-requirements.txt, installed by `make test` into .tools/scanners).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNERS_BIN = Path(os.environ.get("MICROVM_SCANNERS_BIN", ROOT / ".tools" / "scanners" / "bin"))
CHECKOV = SCANNERS_BIN / "checkov"
HADOLINT = SCANNERS_BIN / "hadolint"
CHECKOV_CONFIG = ROOT / ".checkov.yaml"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
DOCKERFILE = ROOT / "image" / "Dockerfile"

# Pod security checks that must have run (and passed) on the rendered Deployment: proof that the pod's
# security is really checked, not silently skipped by a parser that did not understand the input.
POD_SECURITY_CHECKS = {
    "CKV_K8S_20",  # no privilege escalation
    "CKV_K8S_22",  # read-only root filesystem
    "CKV_K8S_23",  # no root containers
    "CKV_K8S_28",  # no NET_RAW
    "CKV_K8S_31",  # seccomp RuntimeDefault
    "CKV_K8S_37",  # capabilities dropped
    "CKV_K8S_38",  # no service account token
    "CKV_K8S_40",  # high UID
    "CKV_K8S_8", "CKV_K8S_9",  # liveness and readiness probes
}


def _tool(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing: `make test` installs the scanners (tools/scanners-requirements.txt)")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CHECKPOINT_DISABLE="1")
    return env


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> Path:
    """`python main.py` with the default settings (builds image/ from source), as `cdktf synth` runs it."""
    out = tmp_path_factory.mktemp("synth") / "cdktf.out"
    env = _env()
    env.update(CDKTF_OUTDIR=str(out), CDKTF_CONTEXT_JSON="{}")
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"synth failed:\n{result.stderr[-3000:]}"
    return out


def _checkov(target: Path, framework: str, *, directory: bool = False) -> list[dict]:
    """Run Checkov; return its reports (one per framework). Fails on anything but results."""
    checkov = _tool(CHECKOV)
    args = [str(checkov), "-d" if directory else "-f", str(target), "--framework", framework,
            "--config-file", str(CHECKOV_CONFIG), "-o", "json"]
    result = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), f"checkov did not run ({result.returncode}):\n{result.stderr[-3000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert reports and all("summary" in r for r in reports), f"checkov printed no report:\n{result.stdout[:2000]}"
    return reports


def _assert_clean(reports: list[dict], what: str) -> set[str]:
    """Zero failed checks, no parsing errors, and at least one passed check. Returns the passed check ids."""
    failed = [(c["check_id"], c["resource"], c["check_name"]) for r in reports for c in r["results"].get("failed_checks", [])]
    listing = "\n".join(f"  {cid} on {res}: {name}" for cid, res, name in failed)
    assert not failed, f"checkov found {len(failed)} failed check(s) in {what}:\n{listing}\nfix them; skip (.checkov.yaml, with a reason) only what can not apply"
    assert sum(r["summary"]["parsing_errors"] for r in reports) == 0, f"checkov could not parse {what}"
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 0, f"checkov checked nothing in {what}: a broken invocation must not pass"
    return {c["check_id"] for r in reports for c in r["results"].get("passed_checks", [])}


@pytest.mark.parametrize("stack", ["cluster", "desktop"])
def test_checkov_terraform_stack(synthesized: Path, stack: str) -> None:
    passed = _assert_clean(_checkov(synthesized / "stacks" / stack / "cdk.tf.json", "terraform_json"), f"stack {stack}")
    # The checks that prove the stack's resources were understood at all.
    expected = {"cluster": {"CKV_GCP_66", "CKV_GCP_26", "CKV2_GCP_18"}, "desktop": {"CKV_K8S_22", "CKV_K8S_20", "CKV_K8S_21"}}[stack]
    assert expected <= passed, f"checks that should have run on stack {stack} did not pass: {sorted(expected - passed)}"


def test_checkov_kubernetes_manifests(synthesized: Path, tmp_path: Path) -> None:
    tf = json.loads((synthesized / "stacks" / "desktop" / "cdk.tf.json").read_text())
    manifests = render_manifests(tf)
    kinds = sorted(m["kind"] for m in manifests)
    assert kinds == sorted(["Namespace", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "NetworkPolicy"]), kinds
    folder = tmp_path / "manifests"
    folder.mkdir()
    for m in manifests:
        # JSON is YAML: Checkov's kubernetes framework reads it as a manifest.
        (folder / f"{m['kind'].lower()}.yaml").write_text(json.dumps(m, indent=2))
    passed = _assert_clean(_checkov(folder, "kubernetes", directory=True), "the rendered kubernetes manifests")
    missing = POD_SECURITY_CHECKS - passed
    assert not missing, f"pod security checks did not run or did not pass on the Deployment: {sorted(missing)}"


def test_checkov_dockerfile() -> None:
    if not DOCKERFILE.exists():
        pytest.fail(f"{DOCKERFILE} is missing")
    passed = _assert_clean(_checkov(DOCKERFILE, "dockerfile"), "image/Dockerfile")
    assert {"CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_8"} <= passed  # HEALTHCHECK, a user, not root at the end


def test_hadolint_dockerfile() -> None:
    hadolint = _tool(HADOLINT)
    result = subprocess.run(
        [str(hadolint), "--config", str(HADOLINT_CONFIG), "--disable-ignore-pragma", "--format", "json", str(DOCKERFILE)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.stdout.strip().startswith("["), f"hadolint did not run ({result.returncode}):\n{result.stderr[-2000:]}"
    findings = json.loads(result.stdout)
    listing = "\n".join(f"  {f['code']} line {f['line']} ({f['level']}): {f['message']}" for f in findings)
    assert not findings and result.returncode == 0, f"hadolint found {len(findings)} issue(s) in image/Dockerfile:\n{listing}"
    # hadolint prints nothing for a clean file: prove it parsed this one by feeding it a known finding.
    probe = subprocess.run([str(hadolint), "--config", str(HADOLINT_CONFIG), "--format", "json", "-"],
                           input=DOCKERFILE.read_text() + "\nUSER root\n", capture_output=True, text=True, timeout=120)
    assert "DL3002" in probe.stdout, "hadolint did not check the Dockerfile (a last USER root went unnoticed)"


def test_every_skip_has_a_reason() -> None:
    """Each skipped check in the two configs sits on its own line with a reason, and docs/security.md lists it."""
    security = (ROOT / "docs" / "security.md").read_text()
    for config, pattern in ((CHECKOV_CONFIG, r"^\s*-\s*(CKV\w+)\s*(#.*)?$"), (HADOLINT_CONFIG, r"^\s*-\s*((?:DL|SC)\d+)\s*(#.*)?$")):
        skips = [re.match(pattern, line) for line in config.read_text().splitlines()]
        skips = [m for m in skips if m]
        assert skips, f"no skips parsed from {config.name}: has its format changed?"
        for m in skips:
            assert m[2] and len(m[2]) > 20, f"{config.name}: {m[1]} is skipped without a reason"
            assert f"`{m[1]}`" in security, f"docs/security.md does not list the skipped check {m[1]}"


# --- Kubernetes manifests from the synthesized kubernetes_*_v1 resources ---------------------------------

_KINDS = {
    "kubernetes_namespace_v1": ("v1", "Namespace"),
    "kubernetes_secret_v1": ("v1", "Secret"),
    "kubernetes_deployment_v1": ("apps/v1", "Deployment"),
    "kubernetes_service_v1": ("v1", "Service"),
    "kubernetes_horizontal_pod_autoscaler_v2": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "kubernetes_pod_disruption_budget_v1": ("policy/v1", "PodDisruptionBudget"),
    "kubernetes_network_policy_v1": ("networking.k8s.io/v1", "NetworkPolicy"),
}
# Terraform block name -> Kubernetes field, where it is not just the camelCase of the name.
_RENAMES = {
    "container": "containers", "init_container": "initContainers", "port": "ports", "volume": "volumes",
    "volume_mount": "volumeMounts", "topology_spread_constraint": "topologySpreadConstraints",
    "metric": "metrics", "policy": "policies", "session_affinity_config": "sessionAffinityConfig",
    "client_ip": "clientIP", "load_balancer_source_ranges": "loadBalancerSourceRanges",
}
# Kubernetes fields that are lists; every other one-element list of a block is a single object in Kubernetes.
_LISTS = {"containers", "initContainers", "ports", "volumes", "volumeMounts", "env", "topologySpreadConstraints",
          "metrics", "policies", "ingress", "egress", "from", "to", "drop", "add", "policyTypes",
          "loadBalancerSourceRanges", "ignoreChanges"}
# Integer fields the provider takes as strings.
_INTS = {"runAsUser", "runAsGroup", "fsGroup", "replicas", "maxSurge", "maxUnavailable", "minAvailable", "port",
         "targetPort", "containerPort"}
_REF = re.compile(r"\$\{(kubernetes_\w+)\.([\w-]+)\.metadata\[0\]\.name\}")
_ANY_REF = re.compile(r"\$\{[^}]*\}")


def render_manifests(tf: dict) -> list[dict]:
    resources = tf["resource"]
    names = {(rtype, rid): body["metadata"]["name"] for rtype, group in resources.items()
             for rid, body in group.items() if isinstance(body.get("metadata"), dict) and "name" in body["metadata"]}
    manifests = []
    for rtype, group in resources.items():
        if rtype not in _KINDS:
            continue
        api_version, kind = _KINDS[rtype]
        for body in group.values():
            body = {k: v for k, v in body.items() if k not in ("//", "lifecycle", "timeouts", "depends_on", "wait_for_rollout")}
            manifest = {"apiVersion": api_version, "kind": kind, **_convert(body, names)}
            if kind == "Secret":
                # The value is a deploy-time variable; a placeholder keeps the manifest valid.
                manifest["data"] = {k: "cmVkYWN0ZWQ=" for k in manifest.get("data", {})}
            manifests.append(manifest)
    return manifests


def _convert(value, names, key: str = ""):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            # A block list ("port": [...]) takes the plural name; a scalar keeps its own (httpGet.port).
            field = (_RENAMES.get(k) if isinstance(v, list) or k not in ("port", "policy") else None) or _camel(k)
            # Label maps, annotations, quantities and data keep their keys as written.
            literal = k in ("labels", "annotations", "match_labels", "requests", "limits", "data") or (
                k == "selector" and isinstance(v, dict) and "match_labels" not in v)
            if literal and isinstance(v, dict):
                out[field] = {lk: _scalar(lv, names, lk) for lk, lv in v.items()}
            else:
                out[field] = _convert(v, names, field)
        return out
    if isinstance(value, list):
        items = [_convert(v, names, key) for v in value]
        if key not in _LISTS and len(items) == 1 and isinstance(items[0], dict):
            return items[0]
        return items
    if key in _LISTS and isinstance(value, str) and _ANY_REF.fullmatch(value):
        return ["203.0.113.0/24"]  # a list-valued Terraform variable
    return _scalar(value, names, key)


def _scalar(value, names, key: str):
    if isinstance(value, str):
        value = _REF.sub(lambda m: names.get((m[1], m[2]), "x"), value)
        value = _ANY_REF.sub("x", value)
        if key == "defaultMode" and re.fullmatch(r"0[0-7]+", value):
            return int(value, 8)
        if key in _INTS and value.isdigit():
            return int(value)
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
