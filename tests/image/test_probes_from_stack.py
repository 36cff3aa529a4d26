"""The probes the synthesized Deployment carries, executed against the running image.

The probes come from the desktop stack's JSON (what `cdktf deploy` would apply), not from the contract: a
probe pointing at a wrong port, path or scheme fails here. Each runs inside the container's network namespace,
the way the kubelet reaches a pod: the probe's scheme, port and path, its timeout, success on 2xx/3xx.
"""

from __future__ import annotations

import pytest

from tests.synth import one, synth_main

pytestmark = pytest.mark.image

# What the kubelet does for an httpGet probe: GET, certificate not verified, User-Agent kube-probe,
# success on 200-399, failure on anything else or on timeout.
_KUBELET_HTTP_GET = r"""
import ssl, sys, urllib.error, urllib.request
scheme, port, path, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
request = urllib.request.Request(f"{scheme.lower()}://127.0.0.1:{port}{path}", headers={"User-Agent": "kube-probe/1.33"})
try:
    status = urllib.request.urlopen(request, context=context, timeout=timeout).status
except urllib.error.HTTPError as error:
    status = error.code
except Exception as error:
    print(f"probe error: {error!r}")
    sys.exit(2)
print(status)
sys.exit(0 if 200 <= status < 400 else 1)
"""


@pytest.fixture(scope="module")
def probes():
    container = one(synth_main()["desktop"], "kubernetes_deployment_v1")["spec"]["template"]["spec"]["container"][0]
    return {kind: container[kind] for kind in ("startup_probe", "readiness_probe", "liveness_probe")}


def run_probe(desktop, http_get: dict, timeout_seconds: int):
    result = desktop.exec(["python3", "-c", _KUBELET_HTTP_GET, http_get["scheme"], str(http_get["port"]),
                           http_get["path"], str(timeout_seconds)], timeout=timeout_seconds + 10)
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace").strip()


@pytest.mark.parametrize("kind", ["startup_probe", "readiness_probe", "liveness_probe"])
def test_synthesized_probe_passes_on_the_running_image(running_desktop, probes, kind):
    probe = probes[kind]
    code, output = run_probe(running_desktop, probe["http_get"], probe["timeout_seconds"])
    assert code == 0, f"{kind} {probe['http_get']} failed: {output}"


def test_probe_port_listens_on_every_address(running_desktop, probes):
    """The kubelet and the load balancer arrive at the pod's address, not at 127.0.0.1."""
    port = int(probes["readiness_probe"]["http_get"]["port"])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        result = running_desktop.exec(["cat", table])
        for line in result.stdout.decode().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                listening.append(address)
    assert listening, f"nothing listens on the probes' port {port}"
    assert all(set(a) == {"0"} for a in listening), f"port {port} is bound to a single address: {listening}"


@pytest.mark.parametrize("wrong", [{"port": "8444"}, {"path": "/nope"}, {"scheme": "HTTP"}])
def test_a_wrong_probe_fails(running_desktop, probes, wrong):
    """The executor above can fail: the same probe pointed elsewhere does."""
    probe = probes["readiness_probe"]
    code, output = run_probe(running_desktop, {**probe["http_get"], **wrong}, probe["timeout_seconds"])
    assert code != 0, f"a probe with {wrong} passed: {output}"
