"""WarmDesktopService: the desktop on Kubernetes, always one replica warm, autoscaled, behind a load balancer."""

from __future__ import annotations

from typing import Optional, Sequence, Union

from cdktf import Fn, Op, Precondition, TerraformResourceLifecycle
from cdktf_cdktf_provider_google.compute_address import ComputeAddress
from cdktf_cdktf_provider_kubernetes.deployment_v1 import (
    DeploymentV1,
    DeploymentV1SpecTemplateSpecContainer,
    DeploymentV1SpecTemplateSpecContainerEnv,
    DeploymentV1SpecTemplateSpecContainerPort,
    DeploymentV1SpecTemplateSpecContainerVolumeMount,
    DeploymentV1SpecTemplateSpecTopologySpreadConstraint,
    DeploymentV1SpecTemplateSpecTopologySpreadConstraintLabelSelector,
    DeploymentV1SpecTemplateSpecVolume,
)
from cdktf_cdktf_provider_kubernetes.horizontal_pod_autoscaler_v2 import (
    HorizontalPodAutoscalerV2,
    HorizontalPodAutoscalerV2SpecBehaviorScaleDown,
    HorizontalPodAutoscalerV2SpecBehaviorScaleDownPolicy,
    HorizontalPodAutoscalerV2SpecBehaviorScaleUp,
    HorizontalPodAutoscalerV2SpecBehaviorScaleUpPolicy,
    HorizontalPodAutoscalerV2SpecMetric,
)
from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1
from cdktf_cdktf_provider_kubernetes.network_policy_v1 import (
    NetworkPolicyV1,
    NetworkPolicyV1SpecIngress,
    NetworkPolicyV1SpecIngressPorts,
)
from cdktf_cdktf_provider_kubernetes.pod_disruption_budget_v1 import PodDisruptionBudgetV1
from cdktf_cdktf_provider_kubernetes.secret_v1 import SecretV1
from cdktf_cdktf_provider_kubernetes.service_v1 import ServiceV1, ServiceV1SpecPort
from constructs import Construct

from microvm import autopilot, contract, validate
from microvm.errors import ConfigError
from microvm.image import DesktopImage, check_reference
from microvm.probes import DEFAULT_LIVENESS, DEFAULT_READINESS, DEFAULT_STARTUP, HttpsProbe

# The load balancer's port: the browser's default for https.
PUBLIC_PORT = 443
# A scale-down ends someone's live desktop: wait at least this long after load drops.
MIN_SCALE_DOWN_STABILIZATION_SECONDS = 600
# kube-proxy's ClientIP affinity is capped at one day.
MAX_AFFINITY_SECONDS = 86_400
# Namespaces Kubernetes or GKE create and manage (names starting with kube- or gke- too).
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "gmp-system", "gmp-public")


class WarmDesktopService(Construct):
    """The desktop on Kubernetes: its namespace, password Secret, Deployment, Service, autoscaler,
    disruption budget and network policy, plus a reserved regional IP for the load balancer.

    Always warm: at least `min_replicas` (default 1) desktops are running and ready, rollouts add before
    they remove, and a PodDisruptionBudget keeps one through node upgrades. Secure by default: non-root,
    no privilege escalation, every capability dropped, seccomp RuntimeDefault, read-only root filesystem,
    no service account token, the password mounted as a file, only the HTTPS port exposed, and only to
    `allowed_source_ranges`.

    Needs a kubernetes provider for the cluster (`AutopilotCluster.kubernetes_provider`) and a google
    provider in the same stack.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        image: Union[DesktopImage, str],
        password: str,
        allowed_source_ranges: Union[Sequence[str], str],
        project: str,
        region: str,
        name: str = "desktop",
        min_replicas: int = 1,
        max_replicas: int = 5,
        target_cpu_utilization_percent: int = 70,
        scale_down_stabilization_seconds: int = 900,
        cpu_millis: int = 1000,
        memory_mib: int = 4096,
        ephemeral_storage_mib: int = 2048,
        shm_size_mib: int = 512,
        session_affinity_seconds: int = 10_800,
        startup_probe: HttpsProbe = DEFAULT_STARTUP,
        readiness_probe: HttpsProbe = DEFAULT_READINESS,
        liveness_probe: HttpsProbe = DEFAULT_LIVENESS,
    ) -> None:
        image_uri = _image_uri(image)
        _check_password(password)
        # Before the CIDR rules, so the whole internet gets its own message rather than "broader than /1".
        if isinstance(allowed_source_ranges, (list, tuple)) and "0.0.0.0/0" in allowed_source_ranges:
            raise ConfigError("WarmDesktopService.allowed_source_ranges", list(allowed_source_ranges), "opens the desktop to the whole internet", "list the ranges your users connect from")
        source_ranges = validate.cidr_list("WarmDesktopService.allowed_source_ranges", allowed_source_ranges,
                                           min_prefix=1, purpose="", allow_empty=False)
        if not validate.is_token(source_ranges) and "0.0.0.0/0" in source_ranges:
            raise ConfigError("WarmDesktopService.allowed_source_ranges", list(source_ranges), "opens the desktop to the whole internet", "list the ranges your users connect from")
        validate.project_id("WarmDesktopService.project", project)
        validate.region("WarmDesktopService.region", region)
        # Namespace and object names are derived from `name`; the address name adds "microvm-".
        validate.k8s_name("WarmDesktopService.name", name, max_length=40)
        # The name is the namespace: Kubernetes and GKE own these (Autopilot refuses writes to kube-system).
        if name in RESERVED_NAMESPACES or name.startswith(("kube-", "gke-")):
            raise ConfigError("WarmDesktopService.name", name, "is a namespace kubernetes or gke manages, and the desktop needs a namespace of its own", "use 'desktop' or another name")
        validate.integer("WarmDesktopService.min_replicas", min_replicas, minimum=1)
        validate.integer("WarmDesktopService.max_replicas", max_replicas, minimum=1)
        if min_replicas > max_replicas:
            raise ConfigError("WarmDesktopService.min_replicas", min_replicas, f"is above max_replicas ({max_replicas})", f"use at most {max_replicas}, or raise max_replicas")
        validate.integer("WarmDesktopService.target_cpu_utilization_percent", target_cpu_utilization_percent, minimum=10, maximum=100)
        validate.integer("WarmDesktopService.scale_down_stabilization_seconds", scale_down_stabilization_seconds,
                         minimum=MIN_SCALE_DOWN_STABILIZATION_SECONDS, maximum=3600)
        resources = autopilot.check_resources("WarmDesktopService.", cpu_millis, memory_mib, ephemeral_storage_mib)
        validate.integer("WarmDesktopService.shm_size_mib", shm_size_mib, minimum=64)
        if shm_size_mib > memory_mib // 2:
            raise ConfigError("WarmDesktopService.shm_size_mib", shm_size_mib, f"/dev/shm is memory and counts against memory_mib ({memory_mib}), so it may use at most half", f"use {memory_mib // 2} or less")
        validate.integer("WarmDesktopService.session_affinity_seconds", session_affinity_seconds, minimum=60, maximum=MAX_AFFINITY_SECONDS)
        probes = {
            "startup_probe": _probe("WarmDesktopService.startup_probe", startup_probe),
            "readiness_probe": _probe("WarmDesktopService.readiness_probe", readiness_probe),
            "liveness_probe": _probe("WarmDesktopService.liveness_probe", liveness_probe),
        }
        super().__init__(scope, id)

        self._name = name
        labels = {"app.kubernetes.io/name": "microvm-desktop", "app.kubernetes.io/instance": name}
        namespace = NamespaceV1(self, "namespace", metadata={
            "name": name,
            # The pod meets the "restricted" Pod Security Standard; enforce it for anything else too.
            "labels": {**labels, "pod-security.kubernetes.io/enforce": "restricted"},
        })
        meta = {"namespace": namespace.metadata.name, "labels": labels}

        password_secret = SecretV1(self, "password", metadata={**meta, "name": f"{name}-password"},
                                   data={contract.PASSWORD_FILE_NAME: password}, type="Opaque",
                                   lifecycle=_password_rules(password))

        volumes, mounts = _volumes(name, password_secret.metadata.name, shm_size_mib)
        amounts = {"cpu": resources.cpu, "memory": resources.memory, "ephemeral-storage": resources.ephemeral_storage}
        container = DeploymentV1SpecTemplateSpecContainer(
            name="desktop",
            image=image_uri,
            image_pull_policy="Always",
            port=[DeploymentV1SpecTemplateSpecContainerPort(name="https", container_port=contract.HTTPS_PORT, protocol="TCP")],
            env=[DeploymentV1SpecTemplateSpecContainerEnv(name=contract.PASSWORD_FILE_ENV, value=contract.PASSWORD_FILE)],
            # Requests = limits: Autopilot bills requests and, without bursting, forces limits to them.
            resources={"requests": amounts, "limits": amounts},
            security_context={
                "run_as_non_root": True,
                "run_as_user": str(contract.USER_UID),
                "run_as_group": str(contract.USER_GID),
                "allow_privilege_escalation": False,
                "privileged": False,
                "read_only_root_filesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccomp_profile": {"type": "RuntimeDefault"},
            },
            volume_mount=mounts,
            **{k: p.to_terraform() for k, p in probes.items()},
        )
        self._deployment = DeploymentV1(
            self, "deployment",
            metadata={**meta, "name": name},
            spec={
                "replicas": str(min_replicas),
                "selector": {"match_labels": labels},
                # Add the new desktop before removing an old one: never below min_replicas ready.
                "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": "1", "max_unavailable": "0"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "termination_grace_period_seconds": contract.STOP_TIMEOUT_SECONDS + 5,
                        "security_context": {
                            "run_as_non_root": True,
                            "run_as_user": str(contract.USER_UID),
                            "run_as_group": str(contract.USER_GID),
                            "fs_group": str(contract.USER_GID),
                            "seccomp_profile": {"type": "RuntimeDefault"},
                        },
                        # Spread desktops over the region's zones, so one zone's outage keeps some warm.
                        "topology_spread_constraint": [DeploymentV1SpecTemplateSpecTopologySpreadConstraint(
                            max_skew=1, topology_key="topology.kubernetes.io/zone",
                            when_unsatisfiable="ScheduleAnyway", label_selector=[DeploymentV1SpecTemplateSpecTopologySpreadConstraintLabelSelector(match_labels=labels)],
                        )],
                        "container": [container],
                        "volume": volumes,
                    },
                },
            },
            # The autoscaler owns the replica count after the first apply.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["spec[0].replicas"]),
            timeouts={"create": "20m", "update": "20m"},
        )

        self._address = ComputeAddress(self, "address", project=project, region=region, name=f"microvm-{name}",
                                       address_type="EXTERNAL", description=f"Micro-VM desktop {name}")
        self._service = ServiceV1(
            self, "service",
            metadata={**meta, "name": name,
                      "annotations": {"networking.gke.io/load-balancer-ip-addresses": self._address.name}},
            spec={
                "type": "LoadBalancer",
                "selector": labels,
                # Only the HTTPS desktop port; VNC never leaves the pod.
                "port": [ServiceV1SpecPort(name="https", port=PUBLIC_PORT, target_port="https", protocol="TCP")],
                # A desktop is stateful: keep each user on the pod that holds their session.
                "session_affinity": "ClientIP",
                "session_affinity_config": {"client_ip": {"timeout_seconds": session_affinity_seconds}},
                # Keeps the client's address (affinity and source ranges need it) and skips a second hop.
                "external_traffic_policy": "Local",
                "load_balancer_source_ranges": source_ranges,
            },
        )

        HorizontalPodAutoscalerV2(
            self, "autoscaler",
            metadata={**meta, "name": name},
            spec={
                "min_replicas": min_replicas,
                "max_replicas": max_replicas,
                "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": self._deployment.metadata.name},
                "metric": [HorizontalPodAutoscalerV2SpecMetric(type="Resource", resource={
                    "name": "cpu", "target": {"type": "Utilization", "average_utilization": target_cpu_utilization_percent},
                })],
                "behavior": {
                    # Add a desktop quickly when busy; remove one slowly, one at a time.
                    "scale_up": [HorizontalPodAutoscalerV2SpecBehaviorScaleUp(
                        stabilization_window_seconds=0, select_policy="Max",
                        policy=[HorizontalPodAutoscalerV2SpecBehaviorScaleUpPolicy(type="Pods", value=1, period_seconds=60)],
                    )],
                    "scale_down": [HorizontalPodAutoscalerV2SpecBehaviorScaleDown(
                        stabilization_window_seconds=scale_down_stabilization_seconds, select_policy="Min",
                        policy=[HorizontalPodAutoscalerV2SpecBehaviorScaleDownPolicy(type="Pods", value=1, period_seconds=300)],
                    )],
                },
            },
        )
        PodDisruptionBudgetV1(self, "disruption-budget", metadata={**meta, "name": name},
                              spec={"min_available": "1", "selector": {"match_labels": labels}})
        NetworkPolicyV1(
            self, "network-policy",
            metadata={**meta, "name": name},
            spec={
                "pod_selector": {"match_labels": labels},
                "policy_types": ["Ingress"],
                "ingress": [NetworkPolicyV1SpecIngress(
                    ports=[NetworkPolicyV1SpecIngressPorts(port=str(contract.HTTPS_PORT), protocol="TCP")],
                )],
            },
        )
        self._namespace = namespace

    @property
    def name(self) -> str:
        return self._name

    @property
    def namespace(self) -> str:
        return self._namespace.metadata.name

    @property
    def deployment(self) -> DeploymentV1:
        return self._deployment

    @property
    def service(self) -> ServiceV1:
        return self._service

    @property
    def ip_address(self) -> str:
        """The reserved external IP the load balancer listens on."""
        return self._address.address

    @property
    def url(self) -> str:
        """Where users open the desktop."""
        return Fn.join("", ["https://", self.ip_address, "/"])


def _image_uri(image: object) -> str:
    if isinstance(image, DesktopImage):
        return image.image_uri
    if isinstance(image, str):
        # A bare string gets the same rules as a prebuilt reference (a pinned tag or digest).
        return check_reference("WarmDesktopService.image", image)
    raise ConfigError("WarmDesktopService.image", image, "must be a DesktopImage or an image reference string", "pass DesktopImage.from_source(...) or DesktopImage.from_registry(...)")


def _check_password(password: object) -> None:
    # Never echo a password, even a bad one: messages show its type or length only.
    if not isinstance(password, str):
        raise ConfigError("WarmDesktopService.password", f"<{type(password).__name__}>", "must be a string", "pass a string, ideally from a sensitive Terraform variable")
    if not validate.is_token(password) and password.strip() == "":
        raise ConfigError("WarmDesktopService.password", f"<{len(password)} blank characters>", "must not be empty or blank", "use a password of at least 12 characters")
    if not validate.is_token(password) and len(password) < contract.MIN_PASSWORD_LENGTH:
        raise ConfigError("WarmDesktopService.password", f"<{len(password)} characters>", f"must be at least {contract.MIN_PASSWORD_LENGTH} characters (the image refuses shorter ones)", "use a longer password, ideally from a sensitive Terraform variable")


def _password_rules(password: str) -> Optional[TerraformResourceLifecycle]:
    """A deploy-time password (a Terraform variable) gets the same rules as preconditions on its Secret.

    Not as variable validations: Terraform prints the variable's value next to a failed validation, even
    for a sensitive variable; a failed precondition shows only its message. `plan` fails before anything
    is created either way.
    """
    if not validate.is_token(password):
        return None
    n = contract.MIN_PASSWORD_LENGTH
    return TerraformResourceLifecycle(precondition=[
        Precondition(condition=Op.gte(Fn.length_of(password), n),
                     error_message=f"desktop password must be at least {n} characters: the desktop refuses shorter ones."),
        # "< 1", not "== 0": jsii passes a literal 0 to Op.eq as undefined.
        Precondition(condition=Op.lt(Fn.length_of(Fn.regexall("[\\r\\n]", password)), 1),
                     error_message="desktop password must be a single line."),
    ])


def _probe(field: str, probe: object) -> HttpsProbe:
    if not isinstance(probe, HttpsProbe):
        raise ConfigError(field, probe, "must be an HttpsProbe", "pass HttpsProbe(path=..., period_seconds=..., timeout_seconds=..., failure_threshold=...)")
    return probe.check(field)


def _volumes(name: str, password_secret: str, shm_size_mib: int) -> tuple[list, list]:
    """The password and TLS secrets as read-only files, and a volume for every path the image writes."""
    volumes = [
        DeploymentV1SpecTemplateSpecVolume(name="password", secret={
            "secret_name": password_secret, "default_mode": "0440",
        }),
        # Optional: create a kubernetes.io/tls Secret "<name>-tls" to replace the self-signed certificate.
        DeploymentV1SpecTemplateSpecVolume(name="tls", secret={
            "secret_name": f"{name}-tls", "optional": True, "default_mode": "0440",
        }),
        DeploymentV1SpecTemplateSpecVolume(name="shm", empty_dir={"medium": "Memory", "size_limit": f"{shm_size_mib}Mi"}),
    ]
    mounts = [
        DeploymentV1SpecTemplateSpecContainerVolumeMount(name="password", mount_path=contract.PASSWORD_DIR, read_only=True),
        DeploymentV1SpecTemplateSpecContainerVolumeMount(name="tls", mount_path=contract.TLS_DIR, read_only=True),
        DeploymentV1SpecTemplateSpecContainerVolumeMount(name="shm", mount_path=contract.SHM_PATH),
    ]
    for path in contract.WRITABLE_PATHS:
        volume = path.strip("/").replace("/", "-")
        volumes.append(DeploymentV1SpecTemplateSpecVolume(name=volume, empty_dir={}))
        mounts.append(DeploymentV1SpecTemplateSpecContainerVolumeMount(name=volume, mount_path=path))
    return volumes, mounts
