"""The app's settings: cdktf.json "context" values at synth time, Terraform variables at deploy time.

Synth-time settings shape the Terraform (names, image source, sizes). Deploy-time values (project,
region, password, who may connect) are Terraform variables with validations, so a wrong value is
refused by `cdktf deploy` before anything is created.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Optional

from cdktf import App, GcsBackend, TerraformStack, TerraformVariable, TerraformVariableValidationConfig

from microvm import autopilot, contract, validate
from microvm.errors import ConfigError
from microvm.image import check_context_dir, check_reference


@dataclass(frozen=True)
class AppSettings:
    """Every setting with its default. Context keys are the camelCase names in CONTEXT_KEYS."""

    project: Optional[str] = None  # default of the project_id variable; none: asked at deploy
    region: str = "us-central1"  # default of the region variable
    cluster_name: str = "microvm"
    desktop_name: str = "desktop"
    image_reference: Optional[str] = None  # a prebuilt image instead of building image/
    image_context: str = "image"
    authorized_networks: tuple[str, ...] = ()  # control-plane authorized networks; none: open, with auth
    state_bucket: Optional[str] = None  # GCS bucket for Terraform state; none: local state files
    deletion_protection: bool = True
    min_replicas: int = 1
    max_replicas: int = 5
    cpu_millis: int = 1000
    memory_mib: int = 4096

    CONTEXT_KEYS = {
        "project": "project", "region": "region", "clusterName": "cluster_name", "desktopName": "desktop_name",
        "imageReference": "image_reference", "imageContext": "image_context",
        "authorizedNetworks": "authorized_networks", "stateBucket": "state_bucket",
        "deletionProtection": "deletion_protection", "minReplicas": "min_replicas", "maxReplicas": "max_replicas",
        "cpuMillis": "cpu_millis", "memoryMib": "memory_mib",
    }

    @classmethod
    def from_context(cls, app: App) -> "AppSettings":
        _refuse_misspelled_keys(app.node.get_all_context() or {})
        values: dict[str, Any] = {}
        for key, attr in cls.CONTEXT_KEYS.items():
            value = app.node.try_get_context(key)
            if value is not None:
                values[attr] = tuple(value) if attr == "authorized_networks" and isinstance(value, list) else value
        return cls(**values).checked()

    def checked(self) -> "AppSettings":
        """Refuse what the stacks would refuse, naming the context key the user has to change."""
        name = {attr: f"context.{key}" for key, attr in self.CONTEXT_KEYS.items()}
        if self.project is not None:
            validate.project_id(name["project"], self.project)
        validate.region(name["region"], self.region)
        validate.gcp_name(name["cluster_name"], self.cluster_name, max_length=40)
        validate.k8s_name(name["desktop_name"], self.desktop_name, max_length=40)
        if self.image_reference is not None:
            check_reference(name["image_reference"], self.image_reference)
        else:
            check_context_dir(self.image_context, name["image_context"])
        if self.state_bucket is not None:
            validate.string(name["state_bucket"], self.state_bucket, example="my-terraform-state")
        validate.boolean(name["deletion_protection"], self.deletion_protection)
        for attr in ("min_replicas", "max_replicas", "cpu_millis", "memory_mib"):
            validate.integer(name[attr], getattr(self, attr), minimum=1)
        if not isinstance(self.authorized_networks, tuple):
            raise ConfigError(name["authorized_networks"], self.authorized_networks, "must be a list of CIDR blocks", "use a list such as [\"203.0.113.0/24\"]")
        # The constructs check these too, but would name their own argument instead of the context key.
        validate.cidr_list(name["authorized_networks"], self.authorized_networks, min_prefix=8,
                           purpose=": it would open the control plane to most of the internet", allow_empty=True)
        if self.min_replicas > self.max_replicas:
            raise ConfigError(name["min_replicas"], self.min_replicas, f"is above {name['max_replicas']} ({self.max_replicas})", f"use at most {self.max_replicas}, or raise {name['max_replicas']}")
        try:
            autopilot.check_resources("", self.cpu_millis, self.memory_mib, autopilot.MIN_EPHEMERAL_MIB)
        except ConfigError as error:
            raise ConfigError(name.get(error.field, error.field), error.value, error.rule, error.fix) from None
        return self

    def configure_backend(self, stack: TerraformStack, stack_id: str) -> None:
        if self.state_bucket:
            GcsBackend(stack, bucket=self.state_bucket, prefix=f"microvm/{stack_id}")

    def project_variable(self, stack: TerraformStack) -> str:
        return TerraformVariable(
            stack, "project_id", type="string", default=self.project, nullable=False,
            description="Google Cloud project id to deploy into.",
            validation=[_rule(f'can(regex("{validate.PROJECT_ID_PATTERN}", var.project_id))',
                              "project_id must be a Google Cloud project id: 6 to 30 lower-case letters, digits or hyphens, starting with a letter.")],
        ).string_value

    def region_variable(self, stack: TerraformStack) -> str:
        return TerraformVariable(
            stack, "region", type="string", default=self.region, nullable=False,
            description=f"Google Cloud region of the cluster and the desktop's address (default {self.region}).",
            validation=[_rule(f'can(regex("{validate.REGION_PATTERN}", var.region))',
                              "region must be a region such as us-central1, not a zone such as us-central1-a: Autopilot clusters are regional.")],
        ).string_value

    def password_variable(self, stack: TerraformStack) -> str:
        n = contract.MIN_PASSWORD_LENGTH
        # No validation block: Terraform prints a variable's value next to a failed validation, sensitive or
        # not. WarmDesktopService checks the length and the single line as preconditions of its Secret.
        return TerraformVariable(
            stack, "desktop_password", type="string", sensitive=True, nullable=False,
            description=f"Password of the desktop, at least {n} characters. Stored in a Kubernetes Secret and in Terraform state.",
        ).string_value

    def source_ranges_variable(self, stack: TerraformStack) -> list[str]:
        return TerraformVariable(
            stack, "allowed_source_ranges", type="list(string)", nullable=False,
            description="CIDR blocks allowed to reach the desktop's load balancer, e.g. [\"203.0.113.0/24\"].",
            validation=[
                _rule("length(var.allowed_source_ranges) > 0", "allowed_source_ranges must list at least one CIDR block, e.g. [\"203.0.113.0/24\"]."),
                # try(): HCL's && evaluates both sides, and cidrhost() of a non-CIDR is an error, not false.
                _rule("alltrue([for c in var.allowed_source_ranges : can(cidrnetmask(c)) && try(cidrhost(c, 0) == split(\"/\", c)[0], false)])",
                      "allowed_source_ranges must hold IPv4 CIDR blocks written with their network address, e.g. 203.0.113.0/24."),
                _rule("!contains(var.allowed_source_ranges, \"0.0.0.0/0\")",
                      "allowed_source_ranges must not contain 0.0.0.0/0: list the ranges your users connect from."),
            ],
        ).list_value

    def desktop_options(self) -> dict[str, Any]:
        return {"name": self.desktop_name, "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "cpu_millis": self.cpu_millis, "memory_mib": self.memory_mib}

    def next_steps(self, desktop: Any) -> str:
        return (
            f"Open the desktop_url in a browser and sign in with the desktop password (any user name). "
            f"The certificate is self-signed until you create a kubernetes.io/tls Secret named "
            f"{self.desktop_name}-tls in namespace {self.desktop_name} and restart the deployment. "
            f"Status: kubectl -n {self.desktop_name} get pods,svc,hpa."
        )


def _refuse_misspelled_keys(context: dict) -> None:
    """A misspelled key would silently keep its default (e.g. a desktop named "desktop" in production).

    Unknown keys are left alone unless they look like one of ours: cdktf and the CLI put their own keys in
    the context too.
    """
    for key in context:
        if key in AppSettings.CONTEXT_KEYS:
            continue
        match = difflib.get_close_matches(key, AppSettings.CONTEXT_KEYS, n=1, cutoff=0.8) or [
            k for k in AppSettings.CONTEXT_KEYS if k.lower() == str(key).lower()]
        if match:
            raise ConfigError(f"context.{key}", context[key], "is not a setting of this app", f"did you mean {match[0]!r}?")


def _rule(condition: str, message: str) -> TerraformVariableValidationConfig:
    return TerraformVariableValidationConfig(condition=f"${{{condition}}}", error_message=message)
