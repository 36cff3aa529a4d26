"""GKE Autopilot's rules, in one place.

Autopilot quietly raises requests that break its rules (and bills for the raised amount) and rejects
pods above its maxima. The library refuses such values at synth time instead, and says the nearest
valid value. Figures: general-purpose compute class, clusters without pod bursting (limits = requests),
from Google's "Resource requests in Autopilot" page (looked up 2026-12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from microvm import validate
from microvm.errors import ConfigError

RELEASE_CHANNELS = ("REGULAR", "RAPID", "STABLE", "EXTENDED")

CPU_STEP_MILLIS = 250
MIN_CPU_MILLIS = 250
MAX_CPU_MILLIS = 30_000
MIN_MEMORY_MIB = 512
MAX_MEMORY_MIB = 110 * 1024
# Memory per vCPU: 1 GiB to 6.5 GiB.
MIN_MIB_PER_VCPU = 1024
MAX_MIB_PER_VCPU = 6656
MIN_EPHEMERAL_MIB = 10
MAX_EPHEMERAL_MIB = 10 * 1024

# The control plane's private range must be a /28 (provider and API rule).
CONTROL_PLANE_PREFIX = 28

# Autopilot validates these container capabilities; everything else (NET_RAW included) is refused.
# The desktop needs none of them: it drops ALL.
ALLOWED_CAPABILITIES = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT", "SYS_PTRACE",
)


@dataclass(frozen=True)
class Resources:
    """What one desktop pod requests (and, on Autopilot without bursting, is limited to)."""

    cpu_millis: int
    memory_mib: int
    ephemeral_storage_mib: int

    @property
    def cpu(self) -> str:
        return f"{self.cpu_millis}m"

    @property
    def memory(self) -> str:
        return f"{self.memory_mib}Mi"

    @property
    def ephemeral_storage(self) -> str:
        return f"{self.ephemeral_storage_mib}Mi"


def check_resources(prefix: str, cpu_millis: object, memory_mib: object, ephemeral_storage_mib: object) -> Resources:
    """Refuse requests Autopilot would change or reject; `prefix` names the construct in messages."""
    cpu = validate.integer(f"{prefix}cpu_millis", cpu_millis, minimum=1)
    memory = validate.integer(f"{prefix}memory_mib", memory_mib, minimum=1)
    ephemeral = validate.integer(f"{prefix}ephemeral_storage_mib", ephemeral_storage_mib, minimum=1)

    if cpu < MIN_CPU_MILLIS:
        _refuse(f"{prefix}cpu_millis", cpu, f"autopilot's minimum is {MIN_CPU_MILLIS}m", MIN_CPU_MILLIS)
    if cpu > MAX_CPU_MILLIS:
        _refuse(f"{prefix}cpu_millis", cpu, f"autopilot's maximum per pod is {MAX_CPU_MILLIS}m", MAX_CPU_MILLIS)
    if cpu % CPU_STEP_MILLIS:
        nearest = max(MIN_CPU_MILLIS, round(cpu / CPU_STEP_MILLIS) * CPU_STEP_MILLIS)
        _refuse(f"{prefix}cpu_millis", cpu, f"autopilot rounds cpu up to a multiple of {CPU_STEP_MILLIS}m", nearest)
    if memory < MIN_MEMORY_MIB:
        _refuse(f"{prefix}memory_mib", memory, f"autopilot's minimum is {MIN_MEMORY_MIB} MiB", MIN_MEMORY_MIB)
    if memory > MAX_MEMORY_MIB:
        _refuse(f"{prefix}memory_mib", memory, f"autopilot's maximum per pod is {MAX_MEMORY_MIB} MiB", MAX_MEMORY_MIB)
    low, high = cpu * MIN_MIB_PER_VCPU // 1000, math.floor(cpu * MAX_MIB_PER_VCPU / 1000)
    if not low <= memory <= high:
        nearest = min(max(memory, low), high)
        _refuse(
            f"{prefix}memory_mib", memory,
            f"autopilot needs 1 to 6.5 GiB of memory per vCPU, so {low} to {high} MiB for {cpu}m of cpu", nearest,
        )
    if not MIN_EPHEMERAL_MIB <= ephemeral <= MAX_EPHEMERAL_MIB:
        nearest = min(max(ephemeral, MIN_EPHEMERAL_MIB), MAX_EPHEMERAL_MIB)
        _refuse(
            f"{prefix}ephemeral_storage_mib", ephemeral,
            f"autopilot allows {MIN_EPHEMERAL_MIB} to {MAX_EPHEMERAL_MIB} MiB of ephemeral storage", nearest,
        )
    return Resources(cpu, memory, ephemeral)


def _refuse(field: str, value: int, rule: str, nearest: int) -> None:
    raise ConfigError(field, value, rule, f"the nearest valid value is {nearest}")
