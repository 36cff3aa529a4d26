"""AutopilotCluster: a regional GKE Autopilot cluster with its own network (or one passed in)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from cdktf import Fn, TerraformStack
from cdktf_cdktf_provider_google.compute_firewall import ComputeFirewall
from cdktf_cdktf_provider_google.compute_network import ComputeNetwork
from cdktf_cdktf_provider_google.compute_router import ComputeRouter
from cdktf_cdktf_provider_google.compute_router_nat import ComputeRouterNat
from cdktf_cdktf_provider_google.compute_subnetwork import ComputeSubnetwork, ComputeSubnetworkSecondaryIpRange
from cdktf_cdktf_provider_google.container_cluster import (
    ContainerCluster,
    ContainerClusterMasterAuthorizedNetworksConfigCidrBlocks,
)
from cdktf_cdktf_provider_google.data_google_client_config import DataGoogleClientConfig
from cdktf_cdktf_provider_kubernetes.provider import KubernetesProvider
from constructs import Construct

from microvm import autopilot, validate
from microvm.errors import ConfigError
from microvm.project_apis import enable_apis

PODS_RANGE_NAME = "pods"
SERVICES_RANGE_NAME = "services"


@dataclass(frozen=True)
class ExistingNetwork:
    """A VPC you already have. The subnet needs secondary ranges for pods and services."""

    network: str
    """Network self link or name."""
    subnetwork: str
    """Subnetwork self link or name, in the cluster's region."""
    pods_range_name: str = PODS_RANGE_NAME
    services_range_name: str = SERVICES_RANGE_NAME


@dataclass(frozen=True)
class MaintenanceWindow:
    """When Autopilot may upgrade the cluster: a weekly window in UTC.

    Autopilot needs at least 48 hours of maintenance in any 32 days; the default (Saturday and Sunday,
    02:00-08:00 UTC) gives about 52.
    """

    start_time_utc: str = "02:00"
    end_time_utc: str = "08:00"
    days: Sequence[str] = ("SA", "SU")


@dataclass(frozen=True)
class NetworkRanges:
    """The address plan of the network the cluster creates. Defaults leave room for ~4000 pods."""

    subnet_cidr: str = "10.10.0.0/20"
    pods_cidr: str = "10.16.0.0/14"
    services_cidr: str = "10.20.0.0/20"
    control_plane_cidr: str = "172.16.0.32/28"


class AutopilotCluster(Construct):
    """A regional GKE Autopilot cluster with private nodes, Cloud NAT and its own VPC.

    Defaults are the safe ones: deletion protection on, private nodes on, REGULAR release channel,
    client certificates off, Binary Authorization enforcing the project policy, an explicit deny-all
    ingress firewall on the created network, VPC flow logs, a weekend maintenance window. Attributes give a stack what it needs to
    talk to the cluster; `kubernetes_provider()` configures a kubernetes provider for it in any stack.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: str,
        region: str,
        name: str = "microvm",
        network: Optional[ExistingNetwork] = None,
        ranges: NetworkRanges = NetworkRanges(),
        release_channel: str = "REGULAR",
        deletion_protection: bool = True,
        private_nodes: bool = True,
        authorized_networks: Sequence[str] = (),
        maintenance_window: MaintenanceWindow = MaintenanceWindow(),
        labels: Optional[Mapping[str, str]] = None,
    ) -> None:
        validate.project_id("AutopilotCluster.project", project)
        validate.region("AutopilotCluster.region", region)
        validate.gcp_name("AutopilotCluster.name", name, max_length=40)
        validate.one_of("AutopilotCluster.release_channel", release_channel, autopilot.RELEASE_CHANNELS)
        validate.boolean("AutopilotCluster.deletion_protection", deletion_protection)
        validate.boolean("AutopilotCluster.private_nodes", private_nodes)
        if network is not None and not isinstance(network, ExistingNetwork):
            raise ConfigError("AutopilotCluster.network", network, "must be an ExistingNetwork or None", "pass ExistingNetwork(network=..., subnetwork=...) or leave it out to create a network")
        if network is not None:
            validate.string("AutopilotCluster.network.network", network.network, example="projects/my-project/global/networks/my-vpc")
            validate.string("AutopilotCluster.network.subnetwork", network.subnetwork, example="projects/my-project/regions/us-central1/subnetworks/my-subnet")
            validate.gcp_name("AutopilotCluster.network.pods_range_name", network.pods_range_name)
            validate.gcp_name("AutopilotCluster.network.services_range_name", network.services_range_name)
        if not isinstance(ranges, NetworkRanges):
            raise ConfigError("AutopilotCluster.ranges", ranges, "must be a NetworkRanges", "pass NetworkRanges(...) or leave it out")
        validate.cidr("AutopilotCluster.ranges.control_plane_cidr", ranges.control_plane_cidr,
                      min_prefix=autopilot.CONTROL_PLANE_PREFIX, max_prefix=autopilot.CONTROL_PLANE_PREFIX,
                      purpose=": the control plane range must be a /28")
        if network is None:
            validate.cidr("AutopilotCluster.ranges.subnet_cidr", ranges.subnet_cidr, min_prefix=8, max_prefix=29)
            validate.cidr("AutopilotCluster.ranges.pods_cidr", ranges.pods_cidr, min_prefix=8, max_prefix=21,
                          purpose=": autopilot needs at least a /21 for pods")
            validate.cidr("AutopilotCluster.ranges.services_cidr", ranges.services_cidr, min_prefix=8, max_prefix=27)
            validate.no_overlap([
                ("AutopilotCluster.ranges.subnet_cidr", ranges.subnet_cidr),
                ("AutopilotCluster.ranges.pods_cidr", ranges.pods_cidr),
                ("AutopilotCluster.ranges.services_cidr", ranges.services_cidr),
                ("AutopilotCluster.ranges.control_plane_cidr", ranges.control_plane_cidr),
            ])
        # The control plane is reachable from the internet (for `cdktf deploy` from a laptop) unless this
        # list narrows it; an open /0 here would make the list pointless.
        authorized = validate.cidr_list("AutopilotCluster.authorized_networks", authorized_networks, min_prefix=8,
                                        purpose=": it would open the control plane to most of the internet",
                                        allow_empty=True)
        _check_window(maintenance_window)
        all_labels = _labels(labels)
        super().__init__(scope, id)

        # Binary Authorization's API must be on for the cluster to enforce the project's image policy.
        apis = enable_apis(self, project, ("compute.googleapis.com", "container.googleapis.com",
                                           "binaryauthorization.googleapis.com"))

        if network is None:
            vpc = ComputeNetwork(self, "network", project=project, name=f"{name}-network",
                                 auto_create_subnetworks=False, depends_on=apis)
            subnet = ComputeSubnetwork(
                self, "subnet", project=project, region=region, name=f"{name}-subnet", network=vpc.id,
                ip_cidr_range=ranges.subnet_cidr,
                private_ip_google_access=True,
                secondary_ip_range=[
                    ComputeSubnetworkSecondaryIpRange(range_name=PODS_RANGE_NAME, ip_cidr_range=ranges.pods_cidr),
                    ComputeSubnetworkSecondaryIpRange(range_name=SERVICES_RANGE_NAME, ip_cidr_range=ranges.services_cidr),
                ],
                log_config={"aggregation_interval": "INTERVAL_10_MIN", "flow_sampling": 0.5, "metadata": "INCLUDE_ALL_METADATA"},
            )
            # Written down rather than left implied: nothing reaches the nodes from outside unless a
            # narrower rule allows it (GKE adds its own, above this priority, for load balancers and
            # health checks).
            ComputeFirewall(self, "deny-ingress", project=project, name=f"{name}-deny-all-ingress", network=vpc.id,
                            direction="INGRESS", priority=65534, deny=[{"protocol": "all"}],
                            source_ranges=["0.0.0.0/0"],
                            description="Deny all ingress not allowed by a higher-priority rule.")
            network = ExistingNetwork(network=vpc.id, subnetwork=subnet.id)
            self._network_id = vpc.id
        else:
            self._network_id = network.network

        if private_nodes:
            # Private nodes have no public address: Cloud NAT gives them egress (Google APIs and
            # Artifact Registry go through Private Google Access instead).
            router = ComputeRouter(self, "router", project=project, region=region, name=f"{name}-router",
                                   network=network.network)
            ComputeRouterNat(
                self, "nat", project=project, region=region, name=f"{name}-nat", router=router.name,
                nat_ip_allocate_option="AUTO_ONLY",
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                log_config={"enable": True, "filter": "ERRORS_ONLY"},
            )

        self._cluster = ContainerCluster(
            self, "cluster",
            project=project,
            name=name,
            location=region,
            enable_autopilot=True,
            network=network.network,
            subnetwork=network.subnetwork,
            ip_allocation_policy={
                "cluster_secondary_range_name": network.pods_range_name,
                "services_secondary_range_name": network.services_range_name,
            },
            release_channel={"channel": release_channel},
            deletion_protection=deletion_protection,
            private_cluster_config={
                "enable_private_nodes": private_nodes,
                "enable_private_endpoint": False,
                "master_ipv4_cidr_block": ranges.control_plane_cidr,
            },
            master_authorized_networks_config=(
                {"cidr_blocks": [
                    ContainerClusterMasterAuthorizedNetworksConfigCidrBlocks(cidr_block=c, display_name=f"authorized-{i}")
                    for i, c in enumerate(authorized)
                ]} if authorized else None
            ),
            master_auth={"client_certificate_config": {"issue_client_certificate": False}},
            # Pods are admitted only if the project's Binary Authorization policy allows their image. A new
            # project's policy allows all images; tighten it (e.g. to this project's Artifact Registry) there.
            binary_authorization={"evaluation_mode": "PROJECT_SINGLETON_POLICY_ENFORCE"},
            maintenance_policy={"recurring_window": {
                "start_time": f"2025-01-04T{maintenance_window.start_time_utc}:00Z",
                "end_time": f"2025-01-04T{maintenance_window.end_time_utc}:00Z",
                "recurrence": f"FREQ=WEEKLY;BYDAY={','.join(maintenance_window.days)}",
            }},
            resource_labels=all_labels,
            depends_on=apis,
        )
        self._project = project
        self._region = region

    @property
    def cluster(self) -> ContainerCluster:
        """The google_container_cluster resource, for settings this construct does not offer."""
        return self._cluster

    @property
    def name(self) -> str:
        return self._cluster.name

    @property
    def project(self) -> str:
        return self._project

    @property
    def region(self) -> str:
        return self._region

    @property
    def network_id(self) -> str:
        """The VPC the cluster runs in (the created one, or the one passed in)."""
        return self._network_id

    @property
    def endpoint(self) -> str:
        """The control plane's address (no scheme)."""
        return self._cluster.endpoint

    @property
    def ca_certificate(self) -> str:
        """The cluster CA certificate, PEM (decoded from the API's base64)."""
        return Fn.base64decode(self._cluster.master_auth.cluster_ca_certificate)

    def kubernetes_provider(self, scope: Construct, id: str = "kubernetes", *, alias: Optional[str] = None) -> KubernetesProvider:
        """Configure a kubernetes provider for this cluster in `scope`'s stack (this one or another).

        From another stack, cdktf passes the endpoint and CA through remote state and deploys this
        cluster's stack first. The token comes from the deploying identity (google_client_config), so
        that stack needs a google provider too. Configure it in a different stack from the one that
        creates the cluster: the kubernetes provider can not be configured from a cluster created in
        the same apply.
        """
        stack = TerraformStack.of(scope)
        client = DataGoogleClientConfig(stack, f"{id}-google-client")
        return KubernetesProvider(
            stack, id,
            host=Fn.join("", ["https://", self.endpoint]),
            token=client.access_token,
            cluster_ca_certificate=self.ca_certificate,
            alias=alias,
        )


def _check_window(window: object) -> None:
    if not isinstance(window, MaintenanceWindow):
        raise ConfigError("AutopilotCluster.maintenance_window", window, "must be a MaintenanceWindow", "pass MaintenanceWindow(...) or leave it out")
    for attr in ("start_time_utc", "end_time_utc"):
        value = getattr(window, attr)
        if not isinstance(value, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ConfigError(f"AutopilotCluster.maintenance_window.{attr}", value, "must be a time of day HH:MM in UTC", "use a value such as '02:00'")
    if window.end_time_utc <= window.start_time_utc:
        raise ConfigError("AutopilotCluster.maintenance_window.end_time_utc", window.end_time_utc, f"must be after start_time_utc ({window.start_time_utc}) on the same day", "use a later end time")
    days = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
    if isinstance(window.days, str) or not window.days or any(d not in days for d in window.days):
        raise ConfigError("AutopilotCluster.maintenance_window.days", window.days, f"must be a non-empty list of {', '.join(days)}", "use ('SA', 'SU')")
    if len(set(window.days)) != len(window.days):
        raise ConfigError("AutopilotCluster.maintenance_window.days", window.days, "names a day twice", "list each day once")
    minutes = _minutes(window.end_time_utc) - _minutes(window.start_time_utc)
    # Autopilot refuses windows that add up to less than 48 hours in 32 days.
    if minutes * len(window.days) * 32 / 7 < 48 * 60:
        raise ConfigError("AutopilotCluster.maintenance_window", f"{window.start_time_utc}-{window.end_time_utc} on {','.join(window.days)}", "autopilot needs at least 48 hours of maintenance in 32 days (10.5 hours a week)", "widen the window or add days")


def _minutes(hh_mm: str) -> int:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 60 + int(minutes)


def _labels(labels: Optional[Mapping[str, str]]) -> dict[str, str]:
    result = {"managed-by": "microvm"}
    for key, value in (labels or {}).items():
        validate.k8s_name(f"labels key {key!r}", key)
        validate.k8s_name(f"labels[{key!r}]", value)
        result[key] = value
    return result
