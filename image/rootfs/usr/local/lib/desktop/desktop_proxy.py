"""supervisord's `proxy` program: the desktop's only listening port, HTTPS and WSS on $DESKTOP_HTTPS_PORT.

- TLS on every connection (plain HTTP is not served): $DESKTOP_TLS_CERT / $DESKTOP_TLS_KEY, reloaded when
  the files change (a rotated Kubernetes TLS secret).
- HTTP Basic auth on every path, the page, noVNC's files and the websocket alike, except the two health
  endpoints. The user name is ignored (any will do, e.g. "desktop"); the password is compared whole, in
  constant time, with the password file, re-read when it changes.
- Wrong passwords slow down only the address that sends them: after 3 free failures each further failure is
  answered after a delay doubling from 0.5 s up to 10 s, and an address with 4 answers still pending gets 429
  at once. A correct password is never delayed and no other address is affected. Behind a proxy that hides
  client addresses (an HTTP load balancer), everyone shares one address: use a passthrough load balancer.
- A websocket whose Origin is another site is refused (403): browsers send cached Basic credentials with a
  websocket any page opens, so without this check any site could open the desktop in a logged-in browser.
- GET / redirects to noVNC's page with autoconnect, remote resize and reconnect.
- /livez: the proxy answers. /readyz: X answers, the XFCE panel is mapped, the VNC socket completes a
  handshake; 200 or 503 (checked at most once a second).
- The websocket is proxied by websockify's request handler to the VNC unix socket; websockify's own server
  (a process per connection) is not used, so the failure counts live in this one process.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import socket
import ssl
import sys
import threading
import time
import warnings
from http.server import HTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import desktop_lib  # noqa: E402

warnings.filterwarnings("ignore", message=".*numpy.*")
from websockify import websocket as ws_module  # noqa: E402
from websockify.websocketproxy import ProxyRequestHandler  # noqa: E402

LOG = logging.getLogger("proxy")
PORT = int(os.environ.get("DESKTOP_HTTPS_PORT", "8443"))
LIVEZ = os.environ.get("DESKTOP_LIVENESS_PATH", "/livez")
READYZ = os.environ.get("DESKTOP_READINESS_PATH", "/readyz")
WEB_ROOT = "/usr/share/novnc"
INDEX = "/vnc.html?autoconnect=true&resize=remote&reconnect=true&reconnect_delay=1000&path=websockify"
REALM = 'Basic realm="desktop", charset="UTF-8"'


def _fast_unmask(self, buf, mask):
    """websockify unmasks byte by byte in Python without numpy; one big-integer XOR is as fast and needs nothing."""
    n = len(buf)
    if not n:
        return b""
    key = (bytes(mask) * (n // 4 + 1))[:n]
    return (int.from_bytes(buf, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


ws_module.WebSocket._unmask = _fast_unmask


class Password:
    """The password file's content, re-read when the file changes; None when it is missing or too short."""

    def __init__(self, path: str):
        self.path = path
        self._stamp = None
        self._value: bytes | None = None
        self._lock = threading.Lock()

    def get(self) -> bytes | None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return None
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._value = desktop_lib.read_password(self.path).encode("utf-8")
                except desktop_lib.PasswordError as e:
                    LOG.error("password refused, nobody can log in: %s", e)
                    self._value = None
                self._stamp = stamp
            return self._value


class Throttle:
    """Per client address: failures, and answers to failures still being delayed."""

    FREE_FAILURES = 3
    FIRST_DELAY = 0.5
    MAX_DELAY = 10.0
    MAX_PENDING = 4
    FORGET_AFTER = 900.0
    MAX_ADDRESSES = 10000

    def __init__(self):
        self._lock = threading.Lock()
        self._hosts: dict[str, list] = {}  # address -> [failures, last failure (monotonic), pending]

    def admit(self, addr: str) -> bool:
        with self._lock:
            entry = self._hosts.get(addr)
            return entry is None or entry[2] < self.MAX_PENDING

    def failed(self, addr: str) -> float:
        now = time.monotonic()
        with self._lock:
            if len(self._hosts) >= self.MAX_ADDRESSES:
                for a in [a for a, e in self._hosts.items() if now - e[1] > self.FORGET_AFTER and not e[2]]:
                    del self._hosts[a]
            entry = self._hosts.setdefault(addr, [0, now, 0])
            if now - entry[1] > self.FORGET_AFTER:
                entry[0] = 0
            entry[0] += 1
            entry[1] = now
            over = entry[0] - self.FREE_FAILURES
            if over <= 0:
                return 0.0
            entry[2] += 1
            return min(self.FIRST_DELAY * 2 ** (over - 1), self.MAX_DELAY)

    def waited(self, addr: str) -> None:
        with self._lock:
            entry = self._hosts.get(addr)
            if entry:
                entry[2] = max(entry[2] - 1, 0)

    def succeeded(self, addr: str) -> None:
        with self._lock:
            entry = self._hosts.get(addr)
            if entry and not entry[2]:
                del self._hosts[addr]


class Readiness:
    def __init__(self, ttl: float = 1.0):
        self._ttl = ttl
        self._lock = threading.Lock()
        self._at = -1e9
        self._result = (False, "not checked")

    def get(self) -> tuple[bool, str]:
        with self._lock:
            if time.monotonic() - self._at > self._ttl:
                self._result = desktop_lib.readiness()
                self._at = time.monotonic()
            return self._result


class DesktopRequestHandler(ProxyRequestHandler):
    server_version = "desktop"
    sys_version = ""
    # A client has this long for each request (headers included): a slow or idle HTTP client cannot hold a
    # thread forever. A websocket, once upgraded, has no timeout: an idle desktop session is normal.
    timeout = 30

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        path = urlsplit(self.path).path
        if path in (LIVEZ, READYZ):
            self._health(path)
            return False
        addr = self.client_address[0]
        server: DesktopServer = self.server
        if not server.throttle.admit(addr):
            self._reply(429, "too many failed attempts; try again later\n", {"Retry-After": "10"})
            return False
        if self._authorized():
            server.throttle.succeeded(addr)
            if self._is_upgrade() and not self._same_origin():
                # A browser sends cached Basic credentials with a websocket opened by any site's page:
                # only the desktop's own page may open the desktop's websocket.
                LOG.warning("%s: websocket from foreign origin %r refused", addr, self.headers.get("Origin"))
                self._reply(403, "cross-origin websocket refused\n")
                return False
            if path == "/" and self.command in ("GET", "HEAD") and not self._is_upgrade():
                self._reply(302, "", {"Location": INDEX})
                return False
            return True
        # A request without credentials is how every browser starts: answered at once, not counted.
        delay = 0.0
        if self.headers.get("Authorization"):
            LOG.warning("%s: wrong password (%s %s)", addr, self.command, path)
            delay = server.throttle.failed(addr)
        if delay:
            try:
                time.sleep(delay)
            finally:
                server.throttle.waited(addr)
        self._reply(401, "password required\n", {"WWW-Authenticate": REALM})
        return False

    def handle_websocket(self) -> None:
        self.connection.settimeout(None)
        super().handle_websocket()

    def _same_origin(self) -> bool:
        """No Origin (not a browser) or an Origin whose host and port are this request's Host."""
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        try:
            o = urlsplit(origin.strip().lower())
            h = urlsplit("//" + host)
            origin_port = o.port or (443 if o.scheme in ("https", "wss") else 80)
            host_port = h.port or 443
        except ValueError:
            return False
        return bool(o.hostname) and o.hostname == h.hostname and origin_port == host_port

    def _is_upgrade(self) -> bool:
        return (self.headers.get("Upgrade") or "").lower() == "websocket"

    def _authorized(self) -> bool:
        expected = self.server.password.get()
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if expected is None or scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _user, sep, given = decoded.partition(b":")
        return bool(sep) and hmac.compare_digest(given, expected)

    def _health(self, path: str) -> None:
        if self.command not in ("GET", "HEAD") or self._is_upgrade():
            self._reply(405, "method not allowed\n", {"Allow": "GET, HEAD"})
            return
        if path == LIVEZ:
            self._reply(200, "ok\n")
            return
        ok, detail = self.server.readiness.get()
        self._reply(200 if ok else 503, detail + "\n")

    def _reply(self, code: int, body: str, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if code in (401, 429):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def end_headers(self) -> None:
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        LOG.info("%s %s", self.client_address[0], format % args)


class DesktopServer(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    address_family = socket.AF_INET6

    # What websockify's request handler reads from its server.
    only_upgrade = False
    verbose = False
    daemon = False
    record = ""
    run_once = False
    file_only = True
    traffic = False
    web_auth = False  # auth is done in parse_request for every method and path
    host_token = False
    token_plugin = None
    auth_plugin = None
    wrap_cmd = None
    ssl_target = False
    heartbeat = None
    target_host = None
    target_port = None

    def __init__(self, port: int, cert: str, key: str, unix_target: str, password_file: str):
        self.unix_target = unix_target
        self.cert, self.key = cert, key
        self._tls_stamp = None
        self._tls_context: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()
        self.password = Password(password_file)
        self.throttle = Throttle()
        self.readiness = Readiness()
        self.handler_id = 0
        self.tls_context()  # fail at start, not at the first client, when the files are unusable
        try:
            super().__init__(("::", port), DesktopRequestHandler)
        except OSError:
            self.address_family = socket.AF_INET  # no IPv6 in this network namespace
            super().__init__(("0.0.0.0", port), DesktopRequestHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def tls_context(self) -> ssl.SSLContext:
        stamp = tuple(os.stat(f).st_mtime_ns for f in (self.cert, self.key))
        with self._tls_lock:
            if stamp != self._tls_stamp:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(self.cert, self.key)
                self._tls_context, self._tls_stamp = ctx, stamp
            return self._tls_context

    def finish_request(self, request, client_address) -> None:
        addr = client_address[0]
        if addr.startswith("::ffff:"):
            addr = addr[7:]
        client_address = (addr, client_address[1], True)  # websockify reads [2] as "is TLS"
        request.settimeout(10)
        try:
            tls = self.tls_context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            LOG.info("%s: TLS handshake failed: %s", client_address[0], getattr(e, "reason", None) or e)
            return
        try:
            self.handler_id += 1
            self.RequestHandlerClass(tls, client_address, self)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        LOG.exception("%s: request failed", client_address[0])


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="proxy: %(message)s", stream=sys.stdout)
    logging.getLogger("websocket").setLevel(logging.WARNING)
    os.chdir(WEB_ROOT)
    server = DesktopServer(
        PORT,
        os.environ["DESKTOP_TLS_CERT"],
        os.environ["DESKTOP_TLS_KEY"],
        desktop_lib.VNC_SOCKET,
        desktop_lib.password_file(),
    )
    LOG.info("https and wss on port %d, VNC at %s", PORT, desktop_lib.VNC_SOCKET)
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
