"""The edge for tests: a stack's edge files rendered under a temp root and run by real nginx on
loopback, in front of stand-in upstreams, with a client that speaks TLS (SNI = the site's
domain), the PROXY protocol and WebSockets.

Path mapping is explicit: the renderers take `root` (every host path they write into a file is
relocated under it, host_layout.under_root) and a `SiteBinding` (loopback address, free ports);
`install_host_files` writes each HostFile to `root + path`. The one text substitution is in
`upstreams_include`: the active-colour include names the host's colour ports (8081, 3001, ...)
and its loopback check listener's port (8099), which are replaced by the stand-ins' and a free
port (so that several edges, and other tests' hosts, can run at once), and each substitution is
checked to have happened.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from components.host.files import HostFile
from components.host.layout import (
    BACKEND_PORTS,
    FRONTEND_PORTS,
    NGINX_ACCESS_LOG,
    NGINX_ACTIVE_UPSTREAMS_FILE,
    NGINX_SITE_FILE,
    NGINX_VERIFY_PORT,
    Color,
    under_root,
)
from components.offline.runner import stack_config
from components.renderers.edge import edge_host_files
from components.renderers.nginx import SiteBinding
from components.renderers.nginx_upstreams import render_active_upstreams
from components.renderers.tls import PLACEHOLDER_SCRIPT, certificate_paths
from components.settings import PROJECT, Settings, parse_settings

from .procs import ServiceError, free_port, wait_until
from .services import NginxServer, nginx_main_conf

LOOPBACK = "127.0.0.1"

# The http-level directives of Ubuntu's stock /etc/nginx/nginx.conf (24.04 and Debian 12 alike),
# which the site is included after: the site must not repeat any of them at http level, and its
# own server-level settings must win (e.g. TLS 1.0/1.1 are on here).
UBUNTU_HTTP_DEFAULTS = """\
sendfile on;
tcp_nopush on;
types_hash_max_size 2048;
ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
ssl_prefer_server_ciphers on;
gzip on;
"""

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_START_ATTEMPTS = 3


def stack_settings(stack: str, **overrides: Any) -> Settings:
    """A stack's validated settings from its committed stack file (plus overrides)."""
    config, secret_keys = stack_config(stack, overrides=overrides or None)
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
    return parse_settings(stack, raw, {k[len(prefix) :] for k in secret_keys})


def install_host_files(files: list[HostFile], root: Path) -> None:
    """Write each file at `root/<its host path>` with its mode."""
    for file in files:
        target = Path(under_root(file.path, str(root)))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content)
        target.chmod(int(file.mode, 8))


def upstreams_include(color: Color, backend_port: int, frontend_port: int, verify_port: int) -> str:
    """render_active_upstreams(color) with the colour's host ports and the check listener's
    port replaced by test ports."""
    text = render_active_upstreams(color)
    for needle, replacement in (
        (f"127.0.0.1:{BACKEND_PORTS[color]} ", f"127.0.0.1:{backend_port} "),
        (f"127.0.0.1:{FRONTEND_PORTS[color]} ", f"127.0.0.1:{frontend_port} "),
        (f"listen 127.0.0.1:{NGINX_VERIFY_PORT};", f"listen 127.0.0.1:{verify_port};"),
    ):
        assert text.count(needle) == 1, f"{needle!r} not in the include:\n{text}"
        text = text.replace(needle, replacement)
    return text


def write_atomically(path: Path, text: str) -> None:
    """Write a temp file next to `path` and rename it over `path`, as a deploy does."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- stand-in upstreams


class _StandInHandler(BaseHTTPRequestHandler):
    """Echoes what it received as JSON; answers WebSocket upgrades and echoes frames."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write, with Nagle off: else delayed ACKs add 40 ms a request.
    wbufsize = 64 * 1024
    server: _StandInServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what they need from the responses."""

    def _answer(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
            return
        if "delay_ms" in query:
            time.sleep(int(query["delay_ms"][0]) / 1000)
        status = int(query.get("status", ["200"])[0])
        payload = {
            "role": self.server.role,
            "color": self.server.color,
            "method": self.command,
            "path": url.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_bytes": len(body_in),
        }
        if "size" in query:  # compressible padding for the gzip checks
            payload["padding"] = "clipper " * (int(query["size"][0]) // 8)
        body = json.dumps(payload).encode()
        content_type = "application/json"
        if url.path.endswith(".js"):
            content_type = "text/javascript"
        elif url.path.endswith(".png"):
            content_type = "image/png"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Headers real upstreams send that the edge must own or pass through.
        if self.server.role == "frontend":
            self.send_header("X-Frame-Options", "SAMEORIGIN")
            self.send_header("Cache-Control", "public, max-age=60")
            self.send_header("Expires", "Thu, 31 Dec 2037 23:55:55 GMT")
        else:
            self.send_header("Strict-Transport-Security", "max-age=1")
            self.send_header("Cache-Control", "private, max-age=5")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()  # noqa: S324 - RFC 6455
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        message = read_ws_frame(self.rfile)
        send_ws_frame(self.wfile, f"{self.server.color}:{message}".encode(), mask=False)
        self.wfile.flush()
        self.close_connection = True

    do_GET = _answer  # noqa: N815 - the names http.server dispatches to
    do_POST = _answer  # noqa: N815
    do_HEAD = _answer  # noqa: N815


class _StandInServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, role: str, color: str) -> None:
        self.role = role
        self.color = color
        super().__init__((LOOPBACK, 0), _StandInHandler)


@dataclass
class StandIn:
    """One upstream (backend or frontend) of one colour, on a free loopback port."""

    role: str
    color: Color
    server: _StandInServer = field(init=False)
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.server = _StandInServer(self.role, self.color)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- WebSocket frames


def _read_exact(stream: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = (
            stream.read(n - len(data)) if hasattr(stream, "read") else stream.recv(n - len(data))
        )
        if not chunk:
            raise ConnectionError("connection closed inside a WebSocket frame")
        data += chunk
    return data


def read_ws_frame(stream: Any) -> str:
    """Read one (small, unfragmented) WebSocket text frame; unmask it if masked."""
    first, second = _read_exact(stream, 2)
    assert first & 0x0F == 0x1, f"not a text frame: opcode {first & 0x0F}"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exact(stream, 2))
    mask = _read_exact(stream, 4) if second & 0x80 else b"\0\0\0\0"
    data = _read_exact(stream, length)
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data)).decode()


def send_ws_frame(stream: Any, data: bytes, *, mask: bool) -> None:
    """Send one text frame (clients must mask, servers must not)."""
    header = bytes([0x81])
    length = len(data)
    bit = 0x80 if mask else 0
    header += (
        bytes([bit | length]) if length < 126 else bytes([bit | 126]) + struct.pack("!H", length)
    )
    key = os.urandom(4) if mask else b""
    body = bytes(b ^ key[i % 4] for i, b in enumerate(data)) if mask else data
    if hasattr(stream, "sendall"):
        stream.sendall(header + key + body)
    else:
        stream.write(header + key + body)


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class Reply:
    """A response as the client saw it."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


class _LoopbackConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to 127.0.0.1 that names `host` (SNI, Host header) and can send a
    PROXY protocol line first, from a chosen loopback source address."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        proxy_line: str | None = None,
        source: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._tls = tls
        self._proxy_line = proxy_line
        self._source = source

    def connect(self) -> None:
        source = (self._source, 0) if self._source else None
        sock = socket.create_connection((LOOPBACK, self.port), self.timeout, source)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._proxy_line:
            sock.sendall(self._proxy_line.encode())
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host) if self._tls else sock


# --------------------------------------------------------------------------- the site


@dataclass
class EdgeSite:
    """A stack's edge files under `root`, served by real nginx on loopback, in front of stand-in
    blue and green upstreams. Use `start()`/`stop()` or the context manager."""

    settings: Settings
    root: Path
    nginx: NginxServer
    binding: SiteBinding = field(init=False)
    upstreams: dict[tuple[str, Color], StandIn] = field(init=False, default_factory=dict)

    verify_port: int = field(init=False)

    def __post_init__(self) -> None:
        self.binding = SiteBinding(http_port=free_port(), https_port=free_port(), address=LOOPBACK)
        self.verify_port = free_port()

    # ---- life cycle

    def start(self, color: Color = "blue") -> None:
        """Stand-ins up, files rendered and installed, placeholder made, `nginx -t`, nginx up.

        The site's ports are picked free but bound only when nginx starts; if another process
        took one meanwhile, everything is rendered again on new ports (a few attempts).
        """
        for role in ("backend", "frontend"):
            for c in ("blue", "green"):
                self.upstreams[(role, c)] = StandIn(role, c)
        for attempt in range(_START_ATTEMPTS):
            if attempt:
                self.binding = SiteBinding(free_port(), free_port(), LOOPBACK)
            files = edge_host_files(self.settings, root=str(self.root), binding=self.binding)
            install_host_files(files, self.root)
            self.access_log.parent.mkdir(parents=True, exist_ok=True)
            self.include_path.write_text(self.include_for(color))
            if not self.settings.uses_load_balancer:
                self.run_placeholder_script()
            self.nginx.write_conf(UBUNTU_HTTP_DEFAULTS, includes=[self.site_path])
            self.nginx.test()
            ports = [self.binding.http_port]
            if not self.settings.uses_load_balancer:
                ports.append(self.binding.https_port)
            try:
                self.nginx.start(wait_ports=ports)
                return
            except ServiceError as err:
                if "Address already in use" not in str(err) or attempt == _START_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        self.nginx.stop()
        for upstream in self.upstreams.values():
            upstream.close()

    def __enter__(self) -> EdgeSite:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- files

    @property
    def site_path(self) -> Path:
        return Path(under_root(NGINX_SITE_FILE, str(self.root)))

    @property
    def include_path(self) -> Path:
        return Path(under_root(NGINX_ACTIVE_UPSTREAMS_FILE, str(self.root)))

    @property
    def access_log(self) -> Path:
        return Path(under_root(NGINX_ACCESS_LOG, str(self.root)))

    @property
    def certificate(self) -> Path:
        return Path(certificate_paths(self.settings.domain, str(self.root)).fullchain)

    def run_placeholder_script(self) -> subprocess.CompletedProcess[str]:
        script = under_root(PLACEHOLDER_SCRIPT, str(self.root))
        return subprocess.run(
            ["bash", script], capture_output=True, text=True, check=True, timeout=60
        )

    def include_for(self, color: Color) -> str:
        backend, frontend = self.upstreams[("backend", color)], self.upstreams[("frontend", color)]
        return upstreams_include(color, backend.port, frontend.port, self.verify_port)

    def switch_to(self, color: Color) -> None:
        """What a deploy does: rewrite the include atomically, then reload nginx."""
        write_atomically(self.include_path, self.include_for(color))
        self.nginx.reload()

    # ---- clients

    def tls_context(self) -> ssl.SSLContext:
        """Trusts the site's (self-signed placeholder) certificate, verifying the domain."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        context.set_alpn_protocols(["http/1.1"])
        return context

    def connection(
        self,
        *,
        host: str | None = None,
        tls: bool = True,
        proxy_line: str | None = None,
        source: str | None = None,
        timeout: float = 10.0,
    ) -> http.client.HTTPConnection:
        port = self.binding.https_port if tls else self.binding.http_port
        return _LoopbackConnection(
            host or self.settings.domain,
            port,
            tls=self.tls_context() if tls else None,
            proxy_line=proxy_line,
            source=source,
            timeout=timeout,
        )

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        tls: bool | None = None,
        proxy_line: str | None = None,
        conn: http.client.HTTPConnection | None = None,
        host: str | None = None,
    ) -> Reply:
        """One request; TLS unless the site is behind the load balancer (then PROXY + http)."""
        if tls is None:
            tls = not self.settings.uses_load_balancer
        if proxy_line is None and self.settings.uses_load_balancer and not tls:
            proxy_line = proxy_protocol_line("198.51.100.23")
        own = conn is None
        connection = conn or self.connection(host=host, tls=tls, proxy_line=proxy_line)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            if own:
                connection.close()

    @contextmanager
    def websocket(
        self, path: str, *, proxy_line: str | None = None
    ) -> Iterator[tuple[socket.socket, bytes]]:
        """Open a WebSocket through nginx; yields the socket and the raw handshake response."""
        tls = not self.settings.uses_load_balancer
        port = self.binding.https_port if tls else self.binding.http_port
        sock = socket.create_connection((LOOPBACK, port), 10)
        if self.settings.uses_load_balancer:
            sock.sendall((proxy_line or proxy_protocol_line("198.51.100.23")).encode())
        if tls:
            sock = self.tls_context().wrap_socket(sock, server_hostname=self.settings.domain)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {self.settings.domain}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {self.settings.site_url}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                break
            head += chunk
        try:
            yield sock, head
        finally:
            sock.close()

    def access_log_entries(self) -> list[dict[str, Any]]:
        """The JSON access log, one dict per request (each line must be valid JSON)."""
        if not self.access_log.exists():
            return []
        return [
            json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()
        ]

    def log_entry(self, **fields: Any) -> dict[str, Any]:
        """The first access log entry with these field values. nginx logs a request after it
        has answered it, so this waits a little for the line to appear."""

        def find() -> dict[str, Any] | None:
            for entry in self.access_log_entries():
                if all(entry.get(k) == v for k, v in fields.items()):
                    return entry
            return None

        wait_until(lambda: find() is not None, timeout=5)
        entry = find()
        assert entry is not None, f"no access log entry with {fields} in {self.access_log}"
        return entry


def proxy_protocol_line(client: str, server: str = "10.130.0.5", client_port: int = 51234) -> str:
    """A PROXY protocol v1 header as a load balancer sends it before the HTTP request."""
    return f"PROXY TCP4 {client} {server} {client_port} 80\r\n"


def edge_site(settings: Settings, prefix: Path, nginx: NginxServer) -> EdgeSite:
    """An EdgeSite whose root is `prefix` (nginx's prefix too)."""
    return EdgeSite(settings=settings, root=prefix, nginx=nginx)


def main_conf_for(root: Path) -> str:
    """A complete nginx.conf for the site under `root`, after Ubuntu's stock http settings."""
    return nginx_main_conf(
        root, UBUNTU_HTTP_DEFAULTS, includes=[Path(under_root(NGINX_SITE_FILE, str(root)))]
    )
