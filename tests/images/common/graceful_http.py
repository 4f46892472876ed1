"""A threaded HTTP/1.1 server that shuts down like Go's `http.Server.Shutdown`.

Shared by the stand-in backend and frontend images. On SIGTERM it closes its listener at
once (new connections are refused), closes idle keep-alive connections, lets in-flight
requests finish for up to `drain_seconds`, then exits. That is what the real Go backend does
on `docker stop`, and it is the behaviour a blue-green switch must survive without a single
failed request: traffic has to leave a colour before the colour is stopped.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

Route = Callable[["Handler"], tuple[int, str, bytes]]
# An upgrade (WebSocket) takes the connection over: it answers and talks by itself.
Upgrade = Callable[["Handler"], None]


def log(message: str) -> None:
    """One log line on stdout (what `docker logs` shows)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    print(f"{stamp} {message}", flush=True)


class GracefulServer(ThreadingHTTPServer):
    """Tracks connections so a drain knows which are idle and which are serving a request."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.draining = False
        self._lock = threading.Lock()
        self._busy: dict[socket.socket, bool] = {}

    def track(self, conn: socket.socket, busy: bool) -> None:
        with self._lock:
            self._busy[conn] = busy

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._busy.pop(conn, None)

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._busy.values())

    def close_idle(self) -> None:
        with self._lock:
            idle = [conn for conn, busy in self._busy.items() if not busy]
        for conn in idle:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """Routes GET requests by path; marks the connection busy while a request runs."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without TCP_NODELAY, Nagle and delayed ACKs add
    # 40 ms to every response on a kept-alive nginx upstream connection.
    disable_nagle_algorithm = True
    server: GracefulServer
    routes: ClassVar[dict[str, Route]] = {}  # path -> route; "*" answers every other path
    extra_headers: ClassVar[dict[str, str]] = {}
    upgrades: ClassVar[list[tuple[re.Pattern[str], Upgrade]]] = []  # path pattern -> upgrade

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, busy=False)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def parse_request(self) -> bool:
        self.server.track(self.connection, busy=True)
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            self.server.track(self.connection, busy=False)
            if self.server.draining:
                self.close_connection = True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        upgrade = next((u for pattern, u in self.upgrades if pattern.fullmatch(path)), None)
        if upgrade is not None and self.headers.get("Upgrade", "").lower() == "websocket":
            self.close_connection = True
            upgrade(self)
            return
        route = self.routes.get(path) or self.routes.get("*")
        if route is None:
            status, content_type, body = 404, "application/json", b'{"error":"not found"}'
        else:
            status, content_type, body = route(self)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        if self.server.draining:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the interesting lines in `docker logs`


def serve(server: GracefulServer, drain_seconds: float, name: str) -> None:
    """Serve until SIGTERM/SIGINT, then drain like Go's Shutdown and exit 0."""
    done = threading.Event()

    def drain() -> None:
        log(f"{name}: shutting down, draining in-flight requests for up to {drain_seconds:g}s")
        server.draining = True
        server.shutdown()  # stops serve_forever's accept loop
        server.socket.close()  # new connections are refused from here on
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline:
            server.close_idle()
            if server.in_flight() == 0:
                break
            time.sleep(0.02)
        left = server.in_flight()
        log(f"{name}: stopped ({left} request(s) cut off)" if left else f"{name}: drained; bye")
        done.set()

    started = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if not started.is_set():
            started.set()
            threading.Thread(target=drain, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve_forever(poll_interval=0.1)
    done.wait()
    sys.exit(0)
