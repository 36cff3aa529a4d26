"""Google APIs a construct needs, enabled in the project before its resources are created."""

from __future__ import annotations

from typing import Sequence

from cdktf_cdktf_provider_google.project_service import ProjectService
from constructs import Construct


def enable_apis(scope: Construct, project: str, services: Sequence[str]) -> list[ProjectService]:
    """One google_project_service per API, id "api-<name>". Never disabled on destroy: other workloads in the
    project may use the same APIs."""
    return [
        ProjectService(scope, f"api-{service.split('.')[0]}", project=project, service=service, disable_on_destroy=False)
        for service in services
    ]
