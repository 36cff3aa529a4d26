"""The constructs used the way a platform team would: imported into their own stack."""

from __future__ import annotations

import pytest
from cdktf import TerraformStack, Token
from cdktf_cdktf_provider_google.provider import GoogleProvider

from tests.synth import one, resources, synth_app

from microvm import (
    AutopilotCluster,
    DesktopImage,
    ExistingNetwork,
    HttpsProbe,
    MaintenanceWindow,
    WarmDesktopService,
)

DIGEST = "sha256:" + "ab" * 32
REFERENCE = f"europe-docker.pkg.dev/acme/desktops/desktop@{DIGEST}"


def team_stack(app):
    """A user's own stack: their network, a prebuilt image, two desktops for two teams, custom sizes."""
    stack = TerraformStack(app, "team")
    GoogleProvider(stack, "google", project="acme-prod", region="europe-west1")
    cluster = AutopilotCluster(
        stack, "cluster", project="acme-prod", region="europe-west1", name="acme-desktops",
        network=ExistingNetwork(network="projects/acme-prod/global/networks/shared",
                                subnetwork="projects/acme-prod/regions/europe-west1/subnetworks/gke",
                                pods_range_name="gke-pods", services_range_name="gke-services"),
        release_channel="STABLE", deletion_protection=False,
        maintenance_window=MaintenanceWindow(start_time_utc="01:00", end_time_utc="07:00", days=("SA", "SU")),
    )
    cluster.kubernetes_provider(stack)
    image = DesktopImage.from_registry(stack, "image", reference=REFERENCE)
    slow_start = HttpsProbe("/readyz", period_seconds=5, timeout_seconds=3, failure_threshold=36)
    for team, cpu in (("design", 2000), ("support", 500)):
        WarmDesktopService(
            stack, team, name=team, image=image, password="correct horse battery staple",
            allowed_source_ranges=["198.51.100.0/24"], project="acme-prod", region="europe-west1",
            cpu_millis=cpu, memory_mib=cpu * 4, min_replicas=2, max_replicas=3, startup_probe=slow_start,
        )
    return stack


@pytest.fixture(scope="module")
def stack():
    [synthesized] = synth_app(team_stack).values()
    return synthesized


def test_user_stack_with_two_desktops(stack):
    namespaces = sorted(n["metadata"]["name"] for n in resources(stack, "kubernetes_namespace_v1"))
    assert namespaces == ["design", "support"]
    addresses = sorted(a["name"] for a in resources(stack, "google_compute_address"))
    assert addresses == ["microvm-design", "microvm-support"]
    for type_ in ("kubernetes_deployment_v1", "kubernetes_service_v1", "kubernetes_secret_v1",
                  "kubernetes_horizontal_pod_autoscaler_v2", "kubernetes_pod_disruption_budget_v1",
                  "kubernetes_network_policy_v1"):
        assert len(resources(stack, type_)) == 2, type_
    cpus = sorted(d["spec"]["template"]["spec"]["container"][0]["resources"]["limits"]["cpu"]
                  for d in resources(stack, "kubernetes_deployment_v1"))
    assert cpus == ["2000m", "500m"]
    for deployment in resources(stack, "kubernetes_deployment_v1"):
        container = deployment["spec"]["template"]["spec"]["container"][0]
        assert container["image"] == REFERENCE
        assert container["startup_probe"]["failure_threshold"] == 36
        assert deployment["spec"]["replicas"] == "2"
    # Each autoscaler targets its own deployment.
    targets = {h["metadata"]["name"]: h["spec"]["scale_target_ref"]["name"]
               for h in resources(stack, "kubernetes_horizontal_pod_autoscaler_v2")}
    assert targets["design"] != targets["support"]


def test_existing_network_is_used_and_not_created(stack):
    assert not resources(stack, "google_compute_network")
    assert not resources(stack, "google_compute_subnetwork")
    cluster = one(stack, "google_container_cluster")
    assert cluster["network"] == "projects/acme-prod/global/networks/shared"
    assert cluster["ip_allocation_policy"] == {"cluster_secondary_range_name": "gke-pods",
                                               "services_secondary_range_name": "gke-services"}
    assert cluster["release_channel"] == {"channel": "STABLE"} and cluster["deletion_protection"] is False
    # Private nodes still get egress through their own NAT on the given network.
    assert one(stack, "google_compute_router")["network"] == "projects/acme-prod/global/networks/shared"


def test_constructs_compose_in_one_stack_with_the_provider_wired_in_stack(stack):
    [k8s] = stack["provider"]["kubernetes"]
    assert "google_container_cluster." in k8s["host"] and "google_container_cluster." in k8s["cluster_ca_certificate"]
    assert "terraform_remote_state" not in stack.get("data", {})


def test_attributes_are_read_only_tokens(tmp_path):
    from cdktf import App

    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "attrs")
    cluster = AutopilotCluster(stack, "cluster", project="acme-prod", region="europe-west1")
    image = DesktopImage.from_registry(stack, "image", reference=REFERENCE)
    desktop = WarmDesktopService(stack, "desktop", image=image, password="x" * 16,
                                 allowed_source_ranges=["198.51.100.0/24"], project="acme-prod", region="europe-west1")
    for value in (cluster.endpoint, cluster.ca_certificate, desktop.url, desktop.ip_address, desktop.namespace):
        assert Token.is_unresolved(value)
    assert image.image_uri == REFERENCE and image.repository is None and image.source_hash is None
    for obj, attr in ((cluster, "endpoint"), (desktop, "url"), (image, "image_uri")):
        try:
            setattr(obj, attr, "x")
        except AttributeError:
            continue
        raise AssertionError(f"{type(obj).__name__}.{attr} is writable")


def test_the_package_exports_its_constructs_and_stays_light():
    import subprocess
    import sys

    from tests.synth import ROOT

    code = (
        "import sys, microvm\n"
        "assert 'cdktf' not in sys.modules, 'import microvm alone must not load cdktf (and start node)'\n"
        "from microvm import *\n"
        "import constructs\n"
        # constructs/ (our source folder) must never shadow the constructs library cdktf needs.
        "assert 'site-packages' in constructs.__file__, constructs.__file__\n"
        "print(sorted(n for n in dir() if n[0].isupper()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sorted(["AutopilotCluster", "ConfigError", "DesktopImage", "ExistingNetwork",
                                                 "HttpsProbe", "MaintenanceWindow", "NetworkRanges",
                                                 "WarmDesktopService"]))
