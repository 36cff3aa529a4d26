"""The app's two stacks: a snapshot of each, and explicit assertions of what a user relies on."""

from __future__ import annotations

import ipaddress
import shutil

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tests.synth import FIXTURE_IMAGE, ROOT, one, resources, synth_main, walk

from microvm import autopilot, contract
from microvm.image import DesktopImage, _hash_context

VAR = "${var.%s}"


@pytest.fixture(scope="module")
def stacks():
    return synth_main()


@pytest.fixture(scope="module")
def desktop(stacks):
    return stacks["desktop"]


@pytest.fixture(scope="module")
def cluster_stack(stacks):
    return stacks["cluster"]


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def pod_spec(desktop):
    return one(desktop, "kubernetes_deployment_v1")["spec"]["template"]["spec"]


def the_container(desktop):
    containers = pod_spec(desktop)["container"]
    assert len(containers) == 1
    return containers[0]


# --- snapshots (a record of the whole output; the assertions below say what matters) ---

@pytest.mark.parametrize("name", ["cluster", "desktop"])
def test_snapshot(stacks, name, snapshot_json):
    assert stacks[name] == snapshot_json


def test_app_has_exactly_the_two_stacks(stacks):
    assert sorted(stacks) == ["cluster", "desktop"]


# --- the desktop workload ---

def test_probes_use_the_image_contract_and_never_vnc(desktop):
    container = the_container(desktop)
    expected_paths = {"startup_probe": contract.READINESS_PATH, "readiness_probe": contract.READINESS_PATH,
                      "liveness_probe": contract.LIVENESS_PATH}
    for kind, path in expected_paths.items():
        probe = container[kind]
        assert set(probe) >= {"http_get", "period_seconds", "timeout_seconds", "failure_threshold"}, kind
        assert probe["http_get"] == {"path": path, "port": str(contract.HTTPS_PORT), "scheme": "HTTPS"}, kind
        assert probe["timeout_seconds"] <= probe["period_seconds"], kind
    # No probe of any kind may open a VNC port (TigerVNC locks addresses out after bare connections).
    for probe in (container[k] for k in expected_paths):
        assert "tcp_socket" not in probe and "exec" not in probe


def test_startup_probe_covers_the_slowest_start(desktop):
    startup = the_container(desktop)["startup_probe"]
    window = startup["initial_delay_seconds"] + startup["period_seconds"] * startup["failure_threshold"]
    assert window >= contract.SLOWEST_START_SECONDS
    # Fine-grained, so a desktop that starts fast is marked ready fast.
    assert startup["period_seconds"] <= 2


def test_readiness_reacts_within_seconds_and_liveness_is_lenient(desktop):
    container = the_container(desktop)
    readiness, liveness = container["readiness_probe"], container["liveness_probe"]
    assert readiness["period_seconds"] * readiness["failure_threshold"] <= 15
    # A liveness restart ends a user's session: only after the proxy is gone for 30 s or more.
    assert liveness["period_seconds"] * liveness["failure_threshold"] >= 30


def test_resources_are_valid_on_autopilot_without_adjustment(desktop):
    resources_ = the_container(desktop)["resources"]
    assert resources_["requests"] == resources_["limits"]
    cpu = int(resources_["requests"]["cpu"].removesuffix("m"))
    memory = int(resources_["requests"]["memory"].removesuffix("Mi"))
    ephemeral = int(resources_["requests"]["ephemeral-storage"].removesuffix("Mi"))
    assert cpu >= 250 and cpu % 250 == 0
    assert 1024 * cpu / 1000 <= memory <= 6.5 * 1024 * cpu / 1000
    assert 10 <= ephemeral <= 10 * 1024
    # The rules the library enforces agree with these (one source of truth for Autopilot).
    autopilot.check_resources("", cpu, memory, ephemeral)


def test_pod_security(desktop):
    spec = pod_spec(desktop)
    assert spec["automount_service_account_token"] is False
    pod = spec["security_context"]
    assert pod["run_as_non_root"] is True
    assert pod["run_as_user"] == str(contract.USER_UID) and int(pod["run_as_user"]) >= 10000
    assert pod["seccomp_profile"] == {"type": "RuntimeDefault"}
    security = the_container(desktop)["security_context"]
    assert security["allow_privilege_escalation"] is False
    assert security["privileged"] is False
    assert security["read_only_root_filesystem"] is True
    assert security["run_as_non_root"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    for forbidden in ("host_network", "host_pid", "host_ipc"):
        assert not spec.get(forbidden)


def test_writable_paths_and_shm_are_volumes(desktop):
    spec, container = pod_spec(desktop), the_container(desktop)
    volumes = {v["name"]: v for v in spec["volume"]}
    mounts = {m["mount_path"]: m for m in container["volume_mount"]}
    for path in contract.WRITABLE_PATHS:
        assert "empty_dir" in volumes[mounts[path]["name"]], path
        assert not mounts[path].get("read_only")
    shm = volumes[mounts[contract.SHM_PATH]["name"]]
    assert shm["empty_dir"]["medium"] == "Memory"


def test_password_is_a_file_from_a_sensitive_variable_never_an_env_value(desktop):
    variable = desktop["variable"]["desktop_password"]
    assert variable["sensitive"] is True
    assert "default" not in variable
    secret = one(desktop, "kubernetes_secret_v1")
    assert secret["data"] == {contract.PASSWORD_FILE_NAME: VAR % "desktop_password"}
    container, spec = the_container(desktop), pod_spec(desktop)
    mount = next(m for m in container["volume_mount"] if m["mount_path"] == contract.PASSWORD_DIR)
    assert mount["read_only"] is True
    volume = next(v for v in spec["volume"] if v["name"] == mount["name"])
    assert volume["secret"]["secret_name"].startswith("${kubernetes_secret_v1.")
    assert {"name": contract.PASSWORD_FILE_ENV, "value": contract.PASSWORD_FILE} in container["env"]
    # The password itself never appears in the pod spec.
    assert not any(isinstance(v, str) and "var.desktop_password" in v for v in walk(spec))


def test_always_warm(desktop):
    deployment = one(desktop, "kubernetes_deployment_v1")
    assert int(deployment["spec"]["replicas"]) >= 1
    rolling = deployment["spec"]["strategy"]["rolling_update"]
    assert rolling["max_unavailable"] == "0" and int(rolling["max_surge"]) >= 1
    assert "spec[0].replicas" in deployment["lifecycle"]["ignore_changes"]
    pdb = one(desktop, "kubernetes_pod_disruption_budget_v1")
    assert pdb["spec"]["min_available"] == "1"
    assert pdb["spec"]["selector"]["match_labels"] == deployment["spec"]["selector"]["match_labels"]


def test_autoscaler(desktop):
    hpa = one(desktop, "kubernetes_horizontal_pod_autoscaler_v2")["spec"]
    assert (hpa["min_replicas"], hpa["max_replicas"]) == (1, 5)
    assert hpa["scale_target_ref"]["kind"] == "Deployment"
    assert hpa["scale_target_ref"]["name"].startswith("${kubernetes_deployment_v1.")
    [metric] = hpa["metric"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    [down] = hpa["behavior"]["scale_down"]
    assert down["stabilization_window_seconds"] >= 600
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in down["policy"])


def test_service_exposes_only_the_https_port_to_the_allowed_ranges(desktop):
    service = one(desktop, "kubernetes_service_v1")
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    [port] = spec["port"]
    assert port["port"] == 443 and port["target_port"] == "https"
    container_ports = the_container(desktop)["port"]
    assert [(p["name"], p["container_port"]) for p in container_ports] == [("https", contract.HTTPS_PORT)]
    assert spec["session_affinity"] == "ClientIP"
    assert spec["external_traffic_policy"] == "Local"
    assert spec["load_balancer_source_ranges"] == VAR % "allowed_source_ranges"
    address = one(desktop, "google_compute_address")
    assert "region" in address and address["address_type"] == "EXTERNAL"
    annotation = service["metadata"]["annotations"]["networking.gke.io/load-balancer-ip-addresses"]
    assert annotation.startswith("${google_compute_address.") and annotation.endswith(".name}")


def test_network_policy_admits_only_the_desktop_port(desktop):
    policy = one(desktop, "kubernetes_network_policy_v1")["spec"]
    assert policy["policy_types"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": str(contract.HTTPS_PORT), "protocol": "TCP"}]


def test_everything_lives_in_the_desktop_namespace(desktop):
    namespace = one(desktop, "kubernetes_namespace_v1")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for type_ in ("kubernetes_deployment_v1", "kubernetes_service_v1", "kubernetes_secret_v1",
                  "kubernetes_horizontal_pod_autoscaler_v2", "kubernetes_pod_disruption_budget_v1",
                  "kubernetes_network_policy_v1"):
        assert one(desktop, type_)["metadata"]["namespace"].startswith("${kubernetes_namespace_v1."), type_


def test_labels_and_selectors_are_derived_once(desktop):
    deployment = one(desktop, "kubernetes_deployment_v1")
    selector = deployment["spec"]["selector"]["match_labels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == selector
    assert one(desktop, "kubernetes_service_v1")["spec"]["selector"] == selector
    assert one(desktop, "kubernetes_network_policy_v1")["spec"]["pod_selector"]["match_labels"] == selector


def test_desktop_variables_are_validated(desktop):
    assert desktop["variable"]["allowed_source_ranges"]["type"] == "list(string)"
    assert "default" not in desktop["variable"]["allowed_source_ranges"]
    assert desktop["variable"]["allowed_source_ranges"]["validation"]
    # The password's rules are preconditions of its Secret: terraform prints a sensitive variable's value
    # next to a failed variable validation, but only the message for a failed precondition.
    assert "validation" not in desktop["variable"]["desktop_password"]
    preconditions = one(desktop, "kubernetes_secret_v1")["lifecycle"]["precondition"]
    assert any("length(var.desktop_password)" in p["condition"] for p in preconditions)


def test_outputs_give_the_url_and_next_steps(desktop):
    assert "google_compute_address." in desktop["output"]["desktop_url"]["value"]
    assert desktop["output"]["desktop_url"]["value"].startswith('${join("", ["https://"')
    assert "kubectl" in desktop["output"]["next_steps"]["value"]


# --- provider wiring across the stacks ---

def test_kubernetes_provider_is_wired_from_the_cluster_stack(desktop, cluster_stack):
    [remote] = desktop["data"]["terraform_remote_state"].values()
    assert remote["backend"] == "local" and remote["config"]["path"] == "<root>/terraform.cluster.tfstate"
    outputs = cluster_stack["output"]
    [k8s] = desktop["provider"]["kubernetes"]
    ref = "data.terraform_remote_state.cross-stack-reference-input-cluster.outputs."
    endpoint_output = next(k for k in outputs if k.endswith("endpoint"))
    ca_output = next(k for k in outputs if k.endswith("cluster_ca_certificate"))
    assert outputs[endpoint_output]["value"].endswith(".endpoint}")
    assert k8s["host"] == f'${{join("", ["https://", {ref}{endpoint_output}])}}'
    assert k8s["cluster_ca_certificate"] == f"${{base64decode({ref}{ca_output})}}"
    assert k8s["token"] == "${data.google_client_config.kubernetes-google-client.access_token}"
    # The desktop stack's google provider follows the cluster's project and region.
    [google] = desktop["provider"]["google"]
    assert google["project"].startswith("${" + ref) and google["region"].startswith("${" + ref)
    # Neither the cluster stack configures a kubernetes provider (same-apply trap).
    assert "kubernetes" not in cluster_stack.get("provider", {})


def test_state_goes_to_gcs_when_a_bucket_is_given():
    stacks = synth_main({"stateBucket": "my-state"})
    for name, stack in stacks.items():
        assert stack["terraform"]["backend"] == {"gcs": {"bucket": "my-state", "prefix": f"microvm/{name}"}}
    [remote] = stacks["desktop"]["data"]["terraform_remote_state"].values()
    assert remote["backend"] == "gcs" and remote["config"] == {"bucket": "my-state", "prefix": "microvm/cluster"}


# --- the cluster ---

def test_cluster_is_regional_autopilot_with_safe_defaults(cluster_stack):
    cluster = one(cluster_stack, "google_container_cluster")
    assert cluster["enable_autopilot"] is True
    assert cluster["location"] == VAR % "region"
    assert cluster["release_channel"] == {"channel": "REGULAR"}
    assert cluster["deletion_protection"] is True
    assert cluster["private_cluster_config"]["enable_private_nodes"] is True
    assert ipaddress.ip_network(cluster["private_cluster_config"]["master_ipv4_cidr_block"]).prefixlen == 28
    assert cluster["master_auth"]["client_certificate_config"]["issue_client_certificate"] is False
    assert "FREQ=WEEKLY" in cluster["maintenance_policy"]["recurring_window"]["recurrence"]
    # Options the provider rejects with Autopilot are never set.
    for rejected in ("node_pool", "remove_default_node_pool", "enable_shielded_nodes", "default_max_pods_per_node",
                     "enable_intranode_visibility", "network_policy"):
        assert rejected not in cluster, rejected
    variable = cluster_stack["variable"]["region"]
    assert variable["default"] == "us-central1" and variable["validation"]


def test_cluster_network_has_pod_and_service_ranges_private_access_and_nat(cluster_stack):
    cluster = one(cluster_stack, "google_container_cluster")
    subnet = one(cluster_stack, "google_compute_subnetwork")
    assert subnet["private_ip_google_access"] is True
    ranges = {r["range_name"]: r["ip_cidr_range"] for r in subnet["secondary_ip_range"]}
    policy = cluster["ip_allocation_policy"]
    assert set(ranges) == {policy["cluster_secondary_range_name"], policy["services_secondary_range_name"]}
    assert cluster["subnetwork"].startswith("${google_compute_subnetwork.")
    nat = one(cluster_stack, "google_compute_router_nat")
    assert nat["router"].startswith("${google_compute_router.")
    assert nat["source_subnetwork_ip_ranges_to_nat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


def test_control_plane_authorized_networks_when_given():
    cluster = one(synth_main({"authorizedNetworks": ["203.0.113.0/24"]})["cluster"], "google_container_cluster")
    assert cluster["master_authorized_networks_config"]["cidr_blocks"] == [
        {"cidr_block": "203.0.113.0/24", "display_name": "authorized-0"}]


# --- the image ---

def test_image_from_source_is_tagged_by_content_and_built_at_deploy(cluster_stack, desktop):
    expected_hash = _hash_context(ROOT / FIXTURE_IMAGE, contract.build_args())
    repository = one(cluster_stack, "google_artifact_registry_repository")
    assert repository["format"] == "DOCKER" and repository["docker_config"]["immutable_tags"] is True
    build = one(cluster_stack, "terraform_data")
    image_uri = build["triggers_replace"]["image"]
    assert image_uri.endswith(f"/microvm/desktop:src-{expected_hash[:20]}")
    [exec_] = build["provisioner"]
    env = exec_["local-exec"]["environment"]
    assert env["IMAGE"] == image_uri and "gcloud builds submit" in exec_["local-exec"]["command"]
    assert not env["CONTEXT"].startswith("/")  # relative to the stack: no machine paths
    for name, value in contract.build_args().items():
        assert f"{name}={value}" in env["BUILD_CONFIG"]
    # The desktop runs exactly the image the cluster stack builds.
    assert the_container(desktop)["image"].endswith(f":src-{expected_hash[:20]}")


def test_any_change_in_the_context_changes_the_tag(tmp_path):
    context = tmp_path / "image"
    shutil.copytree(ROOT / FIXTURE_IMAGE, context)
    before = _hash_context(context, contract.build_args())
    (context / "Dockerfile").write_text((context / "Dockerfile").read_text() + "# change\n")
    after_edit = _hash_context(context, contract.build_args())
    (context / "new-file").write_text("x")
    after_add = _hash_context(context, contract.build_args())
    other_args = _hash_context(context, {**contract.build_args(), "DESKTOP_HTTPS_PORT": "1"})
    assert len({before, after_edit, after_add, other_args}) == 4


def test_prebuilt_image_creates_no_repository_or_build():
    reference = "europe-docker.pkg.dev/acme/desktops/desktop:1.4.2"
    stacks = synth_main({"imageReference": reference})
    assert not resources(stacks["cluster"], "google_artifact_registry_repository")
    assert not resources(stacks["cluster"], "terraform_data")
    assert the_container(stacks["desktop"])["image"] == reference


def test_real_image_folder_is_a_valid_context():
    if not (ROOT / "image" / "Dockerfile").is_file():
        pytest.fail("image/Dockerfile is missing")
    assert DesktopImage  # the context check itself is exercised by synth_main with the real folder:
    stacks = synth_main({"imageContext": "image"})
    assert one(stacks["cluster"], "terraform_data")["triggers_replace"]["image"].split(":src-")[1]
