"""The desktop image's contract: what the container in `image/` promises to whoever runs it.

One place for the port, the paths and the health endpoints. The Dockerfile receives these values as
build arguments (`build_args()`), WarmDesktopService reads them for its ports, probes and mounts, and
the image tests read them to run and probe the built image. Change a value here and all three follow.

A prebuilt image passed with `DesktopImage.from_registry` must honour the same contract.
"""

from __future__ import annotations

from dataclasses import dataclass

# HTTPS and WSS on one port, served by the proxy in front of the desktop. Above 1024: the desktop
# runs as an unprivileged user with every capability dropped, so it cannot bind a privileged port.
HTTPS_PORT = 8443

# The unprivileged user the whole desktop runs as. A high UID, so it can not collide with a host user
# (the scanners' rule too).
USER_NAME = "desktop"
USER_UID = 10001
USER_GID = 10001
HOME_DIR = "/home/desktop"

# The password is read from a file (a mounted Kubernetes Secret), never from an environment variable.
PASSWORD_FILE_ENV = "DESKTOP_PASSWORD_FILE"
PASSWORD_DIR = "/run/secrets/desktop"
PASSWORD_FILE_NAME = "password"
PASSWORD_FILE = f"{PASSWORD_DIR}/{PASSWORD_FILE_NAME}"
MIN_PASSWORD_LENGTH = 12

# A certificate from a mounted kubernetes.io/tls Secret when present, else a self-signed one made at start.
TLS_DIR = "/run/secrets/desktop-tls"
TLS_CERT_FILE_NAME = "tls.crt"
TLS_KEY_FILE_NAME = "tls.key"

# Health endpoints on HTTPS_PORT, answered without the password (they reveal nothing of the desktop).
# Liveness: the proxy answers; it never opens VNC (TigerVNC locks out addresses that probe it).
LIVENESS_PATH = "/livez"
# Readiness: a user can connect and see the desktop now (X answers, the XFCE panel is mapped,
# the VNC socket accepts).
READINESS_PATH = "/readyz"
# The same readiness check as a command, for the image's HEALTHCHECK and for `docker run` users.
HEALTH_COMMAND = ("/usr/local/bin/desktop-health",)

# The desktop's runtime directory (VNC unix socket, XDG_RUNTIME_DIR, the self-signed certificate).
RUNTIME_DIR = "/run/desktop"

# Paths that must be writable while the root filesystem is read-only: each becomes a volume.
WRITABLE_PATHS = ("/tmp", RUNTIME_DIR, HOME_DIR)
SHM_PATH = "/dev/shm"

# SIGTERM stops every process within this time; the pod's grace period is derived from it.
STOP_TIMEOUT_SECONDS = 10

# The slowest start measured for the image on a 2-core machine was about 5 s to a drawn desktop;
# a cold node and image pull come before the container starts and do not count against the probe.
SLOWEST_START_SECONDS = 60


@dataclass(frozen=True)
class ProbeEndpoint:
    """An HTTPS GET the image answers on HTTPS_PORT."""

    path: str
    port: int = HTTPS_PORT
    scheme: str = "HTTPS"


LIVENESS = ProbeEndpoint(LIVENESS_PATH)
READINESS = ProbeEndpoint(READINESS_PATH)


def build_args() -> dict[str, str]:
    """The Dockerfile's build arguments, so the image is built from the same values."""
    return {
        "DESKTOP_HTTPS_PORT": str(HTTPS_PORT),
        "DESKTOP_USER": USER_NAME,
        "DESKTOP_UID": str(USER_UID),
        "DESKTOP_GID": str(USER_GID),
        "DESKTOP_HOME": HOME_DIR,
        "DESKTOP_RUNTIME_DIR": RUNTIME_DIR,
        "DESKTOP_PASSWORD_FILE": PASSWORD_FILE,
        "DESKTOP_MIN_PASSWORD_LENGTH": str(MIN_PASSWORD_LENGTH),
        "DESKTOP_TLS_DIR": TLS_DIR,
        "DESKTOP_LIVENESS_PATH": LIVENESS_PATH,
        "DESKTOP_READINESS_PATH": READINESS_PATH,
        "DESKTOP_STOP_TIMEOUT_SECONDS": str(STOP_TIMEOUT_SECONDS),
    }
