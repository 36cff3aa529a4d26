"""Probes as small value objects. The defaults point at the image contract's health endpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass

from microvm import contract, validate
from microvm.errors import ConfigError


@dataclass(frozen=True)
class HttpsProbe:
    """An HTTPS GET on the desktop's port; any 2xx/3xx passes. Kubernetes does not verify the certificate."""

    path: str
    period_seconds: int
    timeout_seconds: int
    failure_threshold: int
    initial_delay_seconds: int = 0
    port: int = contract.HTTPS_PORT

    def check(self, field: str) -> "HttpsProbe":
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ConfigError(f"{field}.path", self.path, "must be an absolute URL path", f"use {contract.READINESS_PATH!r}")
        validate.integer(f"{field}.period_seconds", self.period_seconds, minimum=1)
        validate.integer(f"{field}.timeout_seconds", self.timeout_seconds, minimum=1)
        validate.integer(f"{field}.failure_threshold", self.failure_threshold, minimum=1)
        validate.integer(f"{field}.initial_delay_seconds", self.initial_delay_seconds, minimum=0)
        validate.integer(f"{field}.port", self.port, minimum=1, maximum=65535)
        if self.timeout_seconds > self.period_seconds:
            raise ConfigError(f"{field}.timeout_seconds", self.timeout_seconds, f"is longer than period_seconds ({self.period_seconds})", "use a timeout no longer than the period")
        return self

    @property
    def window_seconds(self) -> int:
        """How long the probe may fail before Kubernetes acts."""
        return self.initial_delay_seconds + self.period_seconds * self.failure_threshold

    def to_terraform(self) -> dict:
        return {
            "http_get": {"path": self.path, "port": str(self.port), "scheme": "HTTPS"},
            "period_seconds": self.period_seconds,
            "timeout_seconds": self.timeout_seconds,
            "failure_threshold": self.failure_threshold,
            "initial_delay_seconds": self.initial_delay_seconds,
            "success_threshold": 1,
        }


# Holds back the other probes until the desktop is drawn; sized for the slowest start.
DEFAULT_STARTUP = HttpsProbe(
    contract.READINESS_PATH, period_seconds=2, timeout_seconds=2,
    failure_threshold=math.ceil(contract.SLOWEST_START_SECONDS / 2),
)
# "A user can connect now": out of the Service within ~10 s of the desktop failing.
DEFAULT_READINESS = HttpsProbe(contract.READINESS_PATH, period_seconds=5, timeout_seconds=3, failure_threshold=2)
# The proxy answers. Never opens VNC (TigerVNC locks out addresses that connect without logging in).
# Lenient: a restart ends the user's session, so only a proxy that stays dead for 30 s is restarted.
DEFAULT_LIVENESS = HttpsProbe(contract.LIVENESS_PATH, period_seconds=10, timeout_seconds=5, failure_threshold=3)
