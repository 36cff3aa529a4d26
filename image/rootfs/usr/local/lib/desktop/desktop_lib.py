"""What the entry point, the session runner, the proxy and the health command share.

Only the standard library: the password rule, and readiness checks that speak the X11 and RFB protocols over
their unix sockets directly (no xdpyinfo/xwininfo processes to start, nothing that counts as a failed VNC login).
"""

from __future__ import annotations

import os
import socket
import struct
import time

RUNTIME_DIR = os.environ.get("DESKTOP_RUNTIME_DIR", "/run/desktop")
VNC_SOCKET = os.path.join(RUNTIME_DIR, "vnc.sock")
DISPLAY_NUMBER = int(os.environ.get("DISPLAY", ":1").lstrip(":").split(".")[0] or 1)
X_SOCKET = f"/tmp/.X11-unix/X{DISPLAY_NUMBER}"


class PasswordError(Exception):
    """The password file is missing or does not satisfy the rule; the message is one line for the user."""


def password_file() -> str:
    return os.environ.get("DESKTOP_PASSWORD_FILE", "")


def min_password_length() -> int:
    return int(os.environ.get("DESKTOP_MIN_PASSWORD_LENGTH", "12"))


def read_password(path: str | None = None, min_length: int | None = None) -> str:
    """The password in the file, every character of it.

    One trailing line break (LF or CRLF) is not part of the password: files written by `echo` or an editor
    end with one. Anything else, spaces included, counts.
    """
    path = path if path is not None else password_file()
    min_length = min_length if min_length is not None else min_password_length()
    env = "DESKTOP_PASSWORD_FILE"
    if not path:
        raise PasswordError(f"no password file: set {env} to the path of the mounted password secret")
    try:
        with open(path, "rb") as f:
            raw = f.read(65536)
    except FileNotFoundError:
        raise PasswordError(f"no password: {path} does not exist (mount the password secret there; {env} names it)")
    except OSError as e:
        raise PasswordError(f"cannot read the password file {path}: {e.strerror}")
    try:
        password = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PasswordError(f"the password in {path} is not UTF-8 text")
    if password.endswith("\r\n"):
        password = password[:-2]
    elif password.endswith("\n"):
        password = password[:-1]
    if len(password) < min_length:
        raise PasswordError(
            f"the password in {path} has {len(password)} characters; at least {min_length} are required"
        )
    return password


# ---------------------------------------------------------------------------------------------------- X11


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


class XConnection:
    """A minimal X11 client: connection setup, QueryTree, GetProperty, GetWindowAttributes."""

    def __init__(self, path: str = X_SOCKET, timeout: float = 2.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self.sock.sendall(struct.pack("<BxHHHHxx", ord("l"), 11, 0, 0, 0))
            status, _reason_len, _major, _minor, length = struct.unpack("<BBHHH", _recv_exact(self.sock, 8))
            data = _recv_exact(self.sock, length * 4)
        except BaseException:
            self.sock.close()
            raise
        if status != 1:
            self.sock.close()
            raise ConnectionError("X server refused the connection")
        vendor_len, _max_req, _nscreens, nformats = struct.unpack_from("<HHBB", data, 16)
        screen_offset = 32 + ((vendor_len + 3) & ~3) + 8 * nformats
        (self.root,) = struct.unpack_from("<I", data, screen_offset)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> XConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _reply(self) -> tuple[bytes, bytes] | None:
        """The next reply (header, extra), or None for an X error (e.g. a window that just went away)."""
        while True:
            header = _recv_exact(self.sock, 32)
            if header[0] == 0:
                return None
            if header[0] == 1:
                (length,) = struct.unpack_from("<I", header, 4)
                return header, _recv_exact(self.sock, length * 4)
            # an event: none are selected, but skip whatever comes

    def children(self, window: int) -> list[int]:
        self.sock.sendall(struct.pack("<BxHI", 15, 2, window))
        reply = self._reply()
        if reply is None:
            return []
        header, extra = reply
        (count,) = struct.unpack_from("<H", header, 16)
        return list(struct.unpack_from(f"<{count}I", extra))

    def wm_class(self, window: int) -> bytes:
        wm_class_atom, any_type = 67, 0
        self.sock.sendall(struct.pack("<BBHIIIII", 20, 0, 6, window, wm_class_atom, any_type, 0, 64))
        reply = self._reply()
        if reply is None:
            return b""
        header, extra = reply
        fmt = header[1]
        (count,) = struct.unpack_from("<I", header, 16)
        return extra[: count * max(fmt // 8, 1)]

    def viewable(self, window: int) -> bool:
        self.sock.sendall(struct.pack("<BxHI", 3, 2, window))
        reply = self._reply()
        return reply is not None and reply[0][26] == 2

    def find_viewable(self, wm_class_name: bytes, depth: int = 3) -> bool:
        """Whether a viewable window whose WM_CLASS has this name exists within `depth` levels of the root."""
        level = [self.root]
        for _ in range(depth):
            nxt = []
            for w in level:
                for child in self.children(w):
                    if wm_class_name in self.wm_class(child).split(b"\0") and self.viewable(child):
                        return True
                    nxt.append(child)
            level = nxt
        return False


def x_answers(timeout: float = 1.0) -> bool:
    try:
        XConnection(timeout=timeout).close()
        return True
    except (OSError, ConnectionError, struct.error):
        return False


def wait_for_x(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if x_answers():
            return True
        time.sleep(0.05)
    return False


def windows_viewable(*names: bytes) -> dict[bytes, bool]:
    """For each WM_CLASS name, whether such a window is viewable now (all False if X does not answer)."""
    try:
        with XConnection() as x:
            return {n: x.find_viewable(n) for n in names}
    except (OSError, ConnectionError, struct.error):
        return {n: False for n in names}


# ---------------------------------------------------------------------------------------------------- RFB


def vnc_serves(path: str = VNC_SOCKET, timeout: float = 2.0) -> tuple[bool, str]:
    """A complete RFB 3.8 handshake (security type None, shared) up to the ServerInit with the screen size.

    Completing the handshake means the VNC server counts this as an authenticated client, never as a failed
    attempt, and proves a viewer would get the framebuffer now.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        banner = _recv_exact(s, 12)
        if not banner.startswith(b"RFB 003."):
            return False, f"unexpected VNC banner {banner!r}"
        s.sendall(b"RFB 003.008\n")
        (count,) = _recv_exact(s, 1)
        if count == 0:
            (n,) = struct.unpack(">I", _recv_exact(s, 4))
            return False, "VNC refused: " + _recv_exact(s, n).decode("utf-8", "replace")
        if 1 not in _recv_exact(s, count):
            return False, "VNC does not offer security type None"
        s.sendall(b"\x01")
        (result,) = struct.unpack(">I", _recv_exact(s, 4))
        if result != 0:
            return False, "VNC security handshake failed"
        s.sendall(b"\x01")
        width, height = struct.unpack(">HH", _recv_exact(s, 4))
        _recv_exact(s, 16)
        (n,) = struct.unpack(">I", _recv_exact(s, 4))
        _recv_exact(s, n)
        if not (width and height):
            return False, "VNC framebuffer is empty"
        return True, f"{width}x{height}"
    except (OSError, ConnectionError, struct.error) as e:
        return False, f"VNC socket: {e}"
    finally:
        s.close()


def readiness() -> tuple[bool, str]:
    """A user can connect and see the desktop now: X answers, the XFCE panel is mapped, VNC serves."""
    if not x_answers():
        return False, "X display does not answer"
    if not windows_viewable(b"xfce4-panel")[b"xfce4-panel"]:
        return False, "XFCE panel is not mapped"
    ok, detail = vnc_serves()
    if not ok:
        return False, detail
    return True, f"ready {detail}"
