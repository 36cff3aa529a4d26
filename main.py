#!/usr/bin/env python
"""The Micro-VM app: two stacks, deployed in order with `cdktf deploy cluster desktop`.

    cluster stack                              desktop stack
    ------------------------------------      ---------------------------------------------
    VPC + subnet (pods, services ranges)       kubernetes provider <- cluster endpoint + CA
    Cloud Router + NAT                         namespace, password Secret (from a variable)
    GKE Autopilot cluster (regional)   ---->   Deployment (warm: >= 1 ready), probes
    Artifact Registry + image build            Service (LoadBalancer, HTTPS only) + static IP
                                               HPA 1-5, PodDisruptionBudget, NetworkPolicy

The kubernetes provider must not be configured from a cluster created in the same apply, hence two
stacks; cdktf wires them with remote state. Settings come from cdktf.json's "context" (see README).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import microvm  # first: makes provider imports lazy (fast synth)
from cdktf import App, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_google.provider import GoogleProvider
from constructs import Construct

from microvm import AutopilotCluster, ConfigError, DesktopImage, WarmDesktopService
from microvm.settings import AppSettings


class ClusterStack(TerraformStack):
    """The network, the Autopilot cluster, the image repository and the image build."""

    def __init__(self, scope: Construct, id: str, settings: AppSettings) -> None:
        super().__init__(scope, id)
        settings.configure_backend(self, id)
        project = settings.project_variable(self)
        region = settings.region_variable(self)
        GoogleProvider(self, "google", project=project, region=region)

        self.cluster = AutopilotCluster(
            self, "cluster", project=project, region=region, name=settings.cluster_name,
            deletion_protection=settings.deletion_protection, authorized_networks=settings.authorized_networks,
        )
        if settings.image_reference:
            self.image = DesktopImage.from_registry(self, "image", reference=settings.image_reference)
        else:
            self.image = DesktopImage.from_source(self, "image", project=project, region=region,
                                                  context_dir=settings.image_context)

        TerraformOutput(self, "cluster_name", value=self.cluster.name)
        TerraformOutput(self, "image_uri", value=self.image.image_uri)
        TerraformOutput(self, "kubectl_credentials", description="Run this to use kubectl on the cluster.",
                        value=f"gcloud container clusters get-credentials {settings.cluster_name} "
                              f"--region {region} --project {project}")


class DesktopStack(TerraformStack):
    """The desktop workload on the cluster, reached through its own load balancer."""

    def __init__(self, scope: Construct, id: str, settings: AppSettings, *,
                 cluster: AutopilotCluster, image: DesktopImage) -> None:
        super().__init__(scope, id)
        settings.configure_backend(self, id)
        GoogleProvider(self, "google", project=cluster.project, region=cluster.region)
        cluster.kubernetes_provider(self)

        password = settings.password_variable(self)
        source_ranges = settings.source_ranges_variable(self)
        self.desktop = WarmDesktopService(
            self, "desktop", image=image, password=password, allowed_source_ranges=source_ranges,
            project=cluster.project, region=cluster.region, **settings.desktop_options(),
        )

        TerraformOutput(self, "desktop_url", value=self.desktop.url,
                        description="Open this in a browser; sign in with any user name and the desktop password.")
        TerraformOutput(self, "next_steps", value=settings.next_steps(self.desktop))


def build(app: App) -> tuple[ClusterStack, DesktopStack]:
    settings = AppSettings.from_context(app)
    cluster = ClusterStack(app, "cluster", settings)
    desktop = DesktopStack(app, "desktop", settings, cluster=cluster.cluster, image=cluster.image)
    return cluster, desktop


def main() -> int:
    outdir = Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    existed = outdir.exists()
    app = App()  # creates the output folder already
    try:
        build(app)
    except ConfigError as error:
        if not existed:
            # A refused input writes nothing: remove the (still empty) folders App() made. rmdir only
            # removes empty folders, so no file is ever lost here.
            for folder in [*sorted(outdir.rglob("*"), reverse=True), outdir]:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
