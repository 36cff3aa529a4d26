"""Bad input, everywhere a user can give it: every case is refused with a ConfigError whose one-line message
names the field, shows the bad value (never a password), states the rule and the fix, and nothing is written.

Constructs and AppSettings are exercised in-process (fast); a few app-level cases run `python main.py` as
`cdktf synth` would, and check the exit code, the single "error: " line and that no cdktf.out appears.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.synth import ROOT  # noqa: F401  (sets up lazy providers and the jsii banner before cdktf)
from cdktf import App, TerraformStack, Testing

from microvm import AutopilotCluster, ConfigError, DesktopImage, WarmDesktopService
from microvm.cluster import ExistingNetwork, MaintenanceWindow, NetworkRanges
from microvm.probes import HttpsProbe
from microvm.settings import AppSettings

Testing.__test__ = False

PROJECT = "my-project-123"
REGION = "us-central1"
SECRET = "correct-horse-battery"
IMAGE = "europe-docker.pkg.dev/p/r/desktop:1.0"


def _stack() -> TerraformStack:
    return TerraformStack(Testing.app(), "x")


def cluster(**kw: Any) -> Callable[[], Any]:
    return lambda: AutopilotCluster(_stack(), "c", **{"project": PROJECT, "region": REGION, **kw})


def source(**kw: Any) -> Callable[[], Any]:
    return lambda: DesktopImage.from_source(_stack(), "i", **{"project": PROJECT, "region": REGION,
                                                               "context_dir": str(_fixture_context()), **kw})


def registry(reference: Any) -> Callable[[], Any]:
    return lambda: DesktopImage.from_registry(_stack(), "i", reference=reference)


def desktop(**kw: Any) -> Callable[[], Any]:
    args = {"image": IMAGE, "password": SECRET, "allowed_source_ranges": ["203.0.113.0/24"],
            "project": PROJECT, "region": REGION, **kw}
    return lambda: WarmDesktopService(_stack(), "d", **args)


def settings(**context: Any) -> Callable[[], Any]:
    """AppSettings as the app reads them: cdktf.json context, camelCase keys."""
    return lambda: AppSettings.from_context(App(outdir=str(_EMPTY_OUTDIR), context={"imageReference": IMAGE, **context}))


def probe(**kw: Any) -> Callable[[], Any]:
    base = {"path": "/readyz", "period_seconds": 5, "timeout_seconds": 3, "failure_threshold": 2, **kw}
    return desktop(readiness_probe=HttpsProbe(**base))


def _fixture_context() -> Path:
    return ROOT / "tests" / "fixtures" / "image"


_EMPTY_OUTDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "microvm-bad-input-outdir"

W = "WarmDesktopService."
A = "AutopilotCluster."

# (id, build, expected field, the bad value as it must appear, repr'd, in the message)
CASES = [
    # AutopilotCluster
    ("cluster-project-int", cluster(project=123), A + "project", 123),
    ("cluster-project-empty", cluster(project=""), A + "project", ""),
    ("cluster-project-blank", cluster(project="   "), A + "project", "   "),
    ("cluster-project-upper-underscore", cluster(project="My_Project"), A + "project", "My_Project"),
    ("cluster-project-too-short", cluster(project="abc"), A + "project", "abc"),
    ("cluster-region-is-zone", cluster(region="us-central1-a"), A + "region", "us-central1-a"),
    ("cluster-region-garbage", cluster(region="uscentral"), A + "region", "uscentral"),
    ("cluster-name-empty", cluster(name=""), A + "name", ""),
    ("cluster-name-whitespace", cluster(name=" \t"), A + "name", " \t"),
    ("cluster-name-characters", cluster(name="Micro_VM"), A + "name", "Micro_VM"),
    ("cluster-name-too-long", cluster(name="a" * 41), A + "name", "a" * 41),
    ("cluster-name-starts-with-digit", cluster(name="1vm"), A + "name", "1vm"),
    ("cluster-name-trailing-hyphen", cluster(name="vm-"), A + "name", "vm-"),
    ("cluster-release-channel", cluster(release_channel="BETA"), A + "release_channel", "BETA"),
    ("cluster-deletion-protection-str", cluster(deletion_protection="yes"), A + "deletion_protection", "yes"),
    ("cluster-private-nodes-int", cluster(private_nodes=1), A + "private_nodes", 1),
    ("cluster-network-str", cluster(network="default"), A + "network", "default"),
    ("cluster-existing-network-empty", cluster(network=ExistingNetwork(network="", subnetwork="s")), A + "network.network", ""),
    ("cluster-existing-range-name", cluster(network=ExistingNetwork(network="n", subnetwork="s", pods_range_name="Pods Range")), A + "network.pods_range_name", "Pods Range"),
    ("cluster-ranges-dict", cluster(ranges={"subnet_cidr": "10.0.0.0/20"}), A + "ranges", {"subnet_cidr": "10.0.0.0/20"}),
    ("cidr-prefix-33", cluster(ranges=NetworkRanges(subnet_cidr="10.0.0.0/33")), A + "ranges.subnet_cidr", "10.0.0.0/33"),
    ("cidr-host-bits", cluster(ranges=NetworkRanges(subnet_cidr="10.10.0.1/20")), A + "ranges.subnet_cidr", "10.10.0.1/20"),
    ("cidr-not-an-address", cluster(ranges=NetworkRanges(subnet_cidr="ten.0.0.0/8")), A + "ranges.subnet_cidr", "ten.0.0.0/8"),
    ("cidr-ipv6", cluster(ranges=NetworkRanges(services_cidr="fd00::/64")), A + "ranges.services_cidr", "fd00::/64"),
    ("cidr-subnet-whole-internet", cluster(ranges=NetworkRanges(subnet_cidr="0.0.0.0/0")), A + "ranges.subnet_cidr", "0.0.0.0/0"),
    ("cidr-pods-too-small", cluster(ranges=NetworkRanges(pods_cidr="10.16.0.0/24")), A + "ranges.pods_cidr", "10.16.0.0/24"),
    ("cidr-control-plane-not-28", cluster(ranges=NetworkRanges(control_plane_cidr="172.16.0.0/24")), A + "ranges.control_plane_cidr", "172.16.0.0/24"),
    ("cidr-overlap", cluster(ranges=NetworkRanges(subnet_cidr="10.16.0.0/20")), A + "ranges.pods_cidr", "10.16.0.0/14"),
    ("authorized-whole-internet", cluster(authorized_networks=["0.0.0.0/0"]), A + "authorized_networks[0]", "0.0.0.0/0"),
    ("authorized-string-not-list", cluster(authorized_networks="203.0.113.0/24"), A + "authorized_networks", "203.0.113.0/24"),
    ("authorized-host-bits", cluster(authorized_networks=["203.0.113.7/24"]), A + "authorized_networks[0]", "203.0.113.7/24"),
    ("window-bad-time", cluster(maintenance_window=MaintenanceWindow(start_time_utc="25:00")), A + "maintenance_window.start_time_utc", "25:00"),
    ("window-end-before-start", cluster(maintenance_window=MaintenanceWindow("08:00", "02:00")), A + "maintenance_window.end_time_utc", "02:00"),
    ("window-bad-day", cluster(maintenance_window=MaintenanceWindow(days=("SA", "XX"))), A + "maintenance_window.days", ("SA", "XX")),
    ("window-days-string", cluster(maintenance_window=MaintenanceWindow(days="SA")), A + "maintenance_window.days", "SA"),
    ("window-too-short", cluster(maintenance_window=MaintenanceWindow("02:00", "03:00", ("SA",))), A + "maintenance_window", "02:00-03:00 on SA"),
    ("labels-key-upper", cluster(labels={"Team": "x"}), "labels key 'Team'", "Team"),
    ("labels-value-space", cluster(labels={"team": "a b"}), "labels['team']", "a b"),
    # DesktopImage.from_source
    ("source-context-missing", source(context_dir="/nonexistent/image"), "DesktopImage.context_dir", "/nonexistent/image"),
    ("source-context-no-dockerfile", source(context_dir=str(ROOT / "tests")), "DesktopImage.context_dir", str(ROOT / "tests")),
    ("source-context-int", source(context_dir=5), "DesktopImage.context_dir", 5),
    ("source-context-empty", source(context_dir=""), "DesktopImage.context_dir", ""),
    ("source-region-is-zone", source(region="europe-west1-b"), "DesktopImage.region", "europe-west1-b"),
    ("source-repository-id", source(repository_id="My Repo"), "DesktopImage.repository_id", "My Repo"),
    ("source-image-name", source(image_name="Desktop!"), "DesktopImage.image_name", "Desktop!"),
    # DesktopImage.from_registry
    ("registry-no-tag", registry("europe-docker.pkg.dev/p/r/desktop"), "DesktopImage.reference", "europe-docker.pkg.dev/p/r/desktop"),
    ("registry-latest", registry("nginx:latest"), "DesktopImage.reference", "nginx:latest"),
    ("registry-upper-case", registry("Nginx:1.0"), "DesktopImage.reference", "Nginx:1.0"),
    ("registry-short-digest", registry("nginx@sha256:abc"), "DesktopImage.reference", "nginx@sha256:abc"),
    ("registry-empty", registry(""), "DesktopImage.reference", ""),
    ("registry-none", registry(None), "DesktopImage.reference", None),
    # WarmDesktopService
    ("desktop-image-int", desktop(image=42), W + "image", 42),
    ("desktop-image-untagged", desktop(image="nginx"), W + "image", "nginx"),
    ("desktop-image-latest", desktop(image="nginx:latest"), W + "image", "nginx:latest"),
    ("sources-empty", desktop(allowed_source_ranges=[]), W + "allowed_source_ranges", []),
    ("sources-whole-internet", desktop(allowed_source_ranges=["203.0.113.0/24", "0.0.0.0/0"]), W + "allowed_source_ranges", ["203.0.113.0/24", "0.0.0.0/0"]),
    ("sources-string", desktop(allowed_source_ranges="203.0.113.0/24"), W + "allowed_source_ranges", "203.0.113.0/24"),
    ("sources-host-bits", desktop(allowed_source_ranges=["203.0.113.5/24"]), W + "allowed_source_ranges[0]", "203.0.113.5/24"),
    ("sources-ipv6-all", desktop(allowed_source_ranges=["::/0"]), W + "allowed_source_ranges[0]", "::/0"),
    ("desktop-project", desktop(project="Project"), W + "project", "Project"),
    ("desktop-region-is-zone", desktop(region="us-east1-c"), W + "region", "us-east1-c"),
    ("desktop-name-upper", desktop(name="Desktop"), W + "name", "Desktop"),
    ("desktop-name-empty", desktop(name=""), W + "name", ""),
    ("desktop-name-too-long", desktop(name="d" * 41), W + "name", "d" * 41),
    ("desktop-name-kube-system", desktop(name="kube-system"), W + "name", "kube-system"),
    ("desktop-name-default", desktop(name="default"), W + "name", "default"),
    ("replicas-min-zero", desktop(min_replicas=0), W + "min_replicas", 0),
    ("replicas-min-negative", desktop(min_replicas=-1), W + "min_replicas", -1),
    ("replicas-min-str", desktop(min_replicas="1"), W + "min_replicas", "1"),
    ("replicas-min-bool", desktop(min_replicas=True), W + "min_replicas", True),
    ("replicas-max-zero", desktop(max_replicas=0), W + "max_replicas", 0),
    ("replicas-min-above-max", desktop(min_replicas=3, max_replicas=2), W + "min_replicas", 3),
    ("hpa-target-low", desktop(target_cpu_utilization_percent=5), W + "target_cpu_utilization_percent", 5),
    ("hpa-target-high", desktop(target_cpu_utilization_percent=150), W + "target_cpu_utilization_percent", 150),
    ("hpa-scale-down-fast", desktop(scale_down_stabilization_seconds=60), W + "scale_down_stabilization_seconds", 60),
    ("cpu-below-minimum", desktop(cpu_millis=100), W + "cpu_millis", 100),
    ("cpu-not-multiple-of-250", desktop(cpu_millis=300), W + "cpu_millis", 300),
    ("cpu-above-maximum", desktop(cpu_millis=31_000, memory_mib=65_536), W + "cpu_millis", 31_000),
    ("cpu-zero", desktop(cpu_millis=0), W + "cpu_millis", 0),
    ("cpu-float", desktop(cpu_millis=1.5), W + "cpu_millis", 1.5),
    ("memory-below-minimum", desktop(cpu_millis=250, memory_mib=256, shm_size_mib=64), W + "memory_mib", 256),
    ("memory-ratio-too-high", desktop(cpu_millis=1000, memory_mib=8192), W + "memory_mib", 8192),
    ("memory-ratio-too-low", desktop(cpu_millis=2000, memory_mib=1024), W + "memory_mib", 1024),
    ("memory-above-maximum", desktop(cpu_millis=30_000, memory_mib=120_000), W + "memory_mib", 120_000),
    ("ephemeral-too-small", desktop(ephemeral_storage_mib=5), W + "ephemeral_storage_mib", 5),
    ("ephemeral-too-large", desktop(ephemeral_storage_mib=20_480), W + "ephemeral_storage_mib", 20_480),
    ("shm-too-small", desktop(shm_size_mib=32), W + "shm_size_mib", 32),
    ("shm-over-half-memory", desktop(shm_size_mib=4096), W + "shm_size_mib", 4096),
    ("affinity-too-short", desktop(session_affinity_seconds=30), W + "session_affinity_seconds", 30),
    ("affinity-over-a-day", desktop(session_affinity_seconds=100_000), W + "session_affinity_seconds", 100_000),
    # HttpsProbe (through the service that checks it)
    ("probe-not-a-probe", desktop(startup_probe="/readyz"), W + "startup_probe", "/readyz"),
    ("probe-relative-path", probe(path="readyz"), W + "readiness_probe.path", "readyz"),
    ("probe-period-zero", probe(period_seconds=0, timeout_seconds=0), W + "readiness_probe.period_seconds", 0),
    ("probe-timeout-above-period", probe(timeout_seconds=10), W + "readiness_probe.timeout_seconds", 10),
    ("probe-threshold-zero", probe(failure_threshold=0), W + "readiness_probe.failure_threshold", 0),
    ("probe-port-out-of-range", probe(port=70_000), W + "readiness_probe.port", 70_000),
    ("probe-negative-delay", probe(initial_delay_seconds=-5), W + "readiness_probe.initial_delay_seconds", -5),
    # AppSettings from cdktf.json context
    ("context-project", settings(project="My Project"), "context.project", "My Project"),
    ("context-region-is-zone", settings(region="europe-west1-b"), "context.region", "europe-west1-b"),
    ("context-cluster-name", settings(clusterName="Bad_Name"), "context.clusterName", "Bad_Name"),
    ("context-desktop-name-long", settings(desktopName="d" * 41), "context.desktopName", "d" * 41),
    ("context-min-replicas-zero", settings(minReplicas=0), "context.minReplicas", 0),
    ("context-max-replicas-str", settings(maxReplicas="5"), "context.maxReplicas", "5"),
    ("context-min-above-max", settings(minReplicas=4, maxReplicas=2), "context.minReplicas", 4),
    ("context-cpu-not-multiple", settings(cpuMillis=300), "context.cpuMillis", 300),
    ("context-memory-ratio", settings(cpuMillis=250, memoryMib=4096), "context.memoryMib", 4096),
    ("context-authorized-string", settings(authorizedNetworks="203.0.113.0/24"), "context.authorizedNetworks", "203.0.113.0/24"),
    ("context-authorized-open", settings(authorizedNetworks=["0.0.0.0/0"]), "context.authorizedNetworks[0]", "0.0.0.0/0"),
    ("context-image-latest", settings(imageReference="nginx:latest"), "context.imageReference", "nginx:latest"),
    ("context-image-context-missing", settings(imageReference=None, imageContext="no-such-folder"), "context.imageContext", "no-such-folder"),
    ("context-deletion-protection-str", settings(deletionProtection="false"), "context.deletionProtection", "false"),
    ("context-state-bucket-blank", settings(stateBucket=" "), "context.stateBucket", " "),
    ("context-key-misspelled", settings(desktopname="alice"), "context.desktopname", "alice"),
    ("context-key-typo", settings(clusterNmae="team"), "context.clusterNmae", "team"),
]


def _check_message(error: ConfigError, field: str) -> str:
    message = str(error)
    assert error.field == field, f"names {error.field!r}, expected {field!r}: {message}"
    assert message.startswith(f"{field} is "), message
    assert error.rule.strip() and error.fix.strip(), f"rule or fix missing: {message}"
    assert f": {error.rule}; {error.fix}" in message, message
    # One sentence in lower case: the field is as the user wrote it, everything after it starts lower-case.
    assert "\n" not in message, message
    for part in (error.rule, error.fix):
        assert not part[0].isupper(), f"{part!r} starts upper-case: {message}"
    assert not message.endswith("."), message
    assert "Traceback" not in message and "jsii" not in message.lower(), message
    return message


@pytest.mark.parametrize("build, field, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_a_useful_message(build: Callable[[], Any], field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        build()
    message = _check_message(raised.value, field)
    assert repr(value) in message, f"the bad value {value!r} is not shown: {message}"


PASSWORDS = [("short", "hunter2"), ("eleven", "x" * 11), ("blank", " " * 14), ("empty", ""), ("number", 123456789012345)]


@pytest.mark.parametrize("password", [p for _, p in PASSWORDS], ids=[i for i, _ in PASSWORDS])
def test_password_refused_and_never_echoed(password: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        desktop(password=password)()
    message = _check_message(raised.value, W + "password")
    for shown in {repr(password), str(password)} - {"", " " * 14}:
        assert shown not in message, f"the password is echoed: {message}"
    assert " " * 14 not in message
    assert "12 characters" in message or "string" in message, message


def test_valid_inputs_still_build() -> None:
    """The same builders with nothing wrong: every case above fails for its own bad value only."""
    cluster()()
    source()()
    registry(IMAGE)()
    desktop()()
    settings()()


# --- The app: `python main.py` as `cdktf synth` runs it ------------------------------------------------------

APP_CASES = [
    ("region-is-zone", {"region": "us-central1-a"}, "context.region", "us-central1-a"),
    ("min-above-max", {"minReplicas": 6, "maxReplicas": 5}, "context.minReplicas", 6),
    ("image-latest", {"imageReference": "ghcr.io/x/desktop:latest"}, "context.imageReference", "ghcr.io/x/desktop:latest"),
    ("image-context-missing", {"imageContext": "no-such-folder"}, "context.imageContext", "no-such-folder"),
    ("cpu-below-autopilot-minimum", {"cpuMillis": 100}, "context.cpuMillis", 100),
]


@pytest.mark.parametrize("context, field, value", [c[1:] for c in APP_CASES], ids=[c[0] for c in APP_CASES])
def test_app_refuses_bad_context(tmp_path: Path, context: dict, field: str, value: Any) -> None:
    outdir = tmp_path / "cdktf.out"
    env = {**os.environ, "CDKTF_OUTDIR": str(outdir), "CDKTF_CONTEXT_JSON": json.dumps(context),
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stderr[-3000:]}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith(f"error: {field} is {value!r}: "), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not outdir.exists(), f"{outdir} was written for a refused input"
