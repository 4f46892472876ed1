"""A bounded load generator for zero-downtime checks: N threads for at most T seconds.

By default every request is a fresh HTTP/1.1 connection to a loopback URL (no client
keep-alive, so a failure is the server side's, never a client's race with an idle connection
being closed). With `keep_alive=True` each worker reuses one connection, as browsers do, and
like them retries a request once on a new connection when a REUSED one turns out closed before
any answer (nginx closes idle keep-alive connections when it reloads); those retries are
counted apart (`LoadResult.retried`), and any other error counts as failed.
Any answer that is not 2xx, and any connection error or timeout, counts as failed, with its
reason. Responses carry the serving release in a header (the stand-in images send
`X-Clipper-Version`), so a test can see which version answered, and when.

    with LoadGenerator(["http://127.0.0.1:8080/api/v1/version"], threads=4) as load:
        ... deploy ...
    assert load.result.failed == 0, load.result.summary()

Used by the release tests (tests/host) and the benchmark (bench/deploy_under_load.py).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

__all__ = ["LoadGenerator", "LoadResult"]

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_RECENT = 2000  # (time, version) pairs kept for "which version answers now"


@dataclass
class LoadResult:
    """What the load saw: counts, failure reasons and the versions that answered."""

    sent: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    retried: int = 0  # keep-alive only: reused connections found closed, retried fresh

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile_ms(self, pct: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]

    def summary(self) -> str:
        """One paragraph for an assertion message or a benchmark log."""
        text = (
            f"sent={self.sent} failed={self.failed} in {self.seconds:.1f}s"
            f" ({self.rate:.0f} req/s, p50 {self.percentile_ms(50):.1f} ms,"
            f" p99 {self.percentile_ms(99):.1f} ms); versions: {dict(self.versions)}"
        )
        if self.retried:
            text += f"; {self.retried} closed keep-alive connections retried"
        if self.reasons:
            text += "; failures: " + "; ".join(f"{n}x {r}" for r, n in self.reasons.most_common(8))
        return text


class LoadGenerator:
    """Drive `threads` workers round-robin over `urls` until stopped or `max_seconds` pass.

    Bounded by design: the loop ends at `max_seconds` even when nobody calls `stop()`, and only
    loopback URLs are accepted.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        threads: int = 4,
        max_seconds: float = 300.0,
        timeout: float = 10.0,
        pause: float = 0.0,
        version_header: str = "X-Clipper-Version",
        keep_alive: bool = False,
    ) -> None:
        if not urls:
            raise ValueError("LoadGenerator needs at least one URL")
        self._targets: list[tuple[str, int, str]] = []
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme != "http" or parts.hostname not in _LOOPBACK_HOSTS:
                raise ValueError(f"load goes to plain-HTTP loopback URLs only, not {url!r}")
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            self._targets.append((parts.hostname, parts.port or 80, path))
        self.threads = threads
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.pause = pause
        self.version_header = version_header
        self.keep_alive = keep_alive
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._recent: deque[tuple[float, str]] = deque(maxlen=_RECENT)
        self._started = 0.0

    # -- life cycle

    def start(self) -> Self:
        self._started = time.monotonic()
        for index in range(self.threads):
            worker = threading.Thread(
                target=self._run, args=(index,), daemon=True, name=f"load-{index}"
            )
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> LoadResult:
        """Stop the workers (each finishes its current request) and return the result."""
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)
        with self._lock:
            self.result.seconds = time.monotonic() - self._started
        return self.result

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observing while it runs

    def snapshot(self) -> tuple[int, int]:
        """(sent, failed) so far."""
        with self._lock:
            return self.result.sent, self.result.failed

    def versions_since(self, moment: float) -> Counter[str]:
        """Versions that answered after `moment` (a time.monotonic() value)."""
        with self._lock:
            return Counter(version for at, version in self._recent if at >= moment)

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until `count` more requests were sent (proof the load is flowing)."""
        target = self.snapshot()[0] + count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.snapshot()[0] >= target:
                return True
            time.sleep(0.02)
        return False

    # -- the workers

    def _run(self, index: int) -> None:
        deadline = self._started + self.max_seconds
        position = index
        connections: dict[tuple[str, int], http.client.HTTPConnection] = {}
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                host, port, path = self._targets[position % len(self._targets)]
                position += 1
                started = time.monotonic()
                if self.keep_alive:
                    ok, reason, version = self._reuse(connections, host, port, path)
                else:
                    ok, reason, version = self._request(host, port, path)
                finished = time.monotonic()
                with self._lock:
                    self.result.sent += 1
                    self.result.latencies_ms.append((finished - started) * 1000)
                    if ok:
                        self.result.versions[version] += 1
                        self._recent.append((finished, version))
                    else:
                        self.result.failed += 1
                        self.result.reasons[f"GET {path}: {reason}"] += 1
                if self.pause:
                    time.sleep(self.pause)
        finally:
            for conn in connections.values():
                conn.close()

    def _answer(
        self, conn: http.client.HTTPConnection, path: str, headers: dict[str, str]
    ) -> tuple[bool, str, str]:
        conn.request("GET", path, headers={"User-Agent": "clipper-load", **headers})
        response = conn.getresponse()
        response.read()
        version = response.getheader(self.version_header) or "-"
        if 200 <= response.status < 300:
            return True, "", version
        return False, f"HTTP {response.status} {response.reason}", version

    def _request(self, host: str, port: int, path: str) -> tuple[bool, str, str]:
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            return self._answer(conn, path, {"Connection": "close"})
        except (OSError, http.client.HTTPException) as exc:
            return False, f"{exc.__class__.__name__}: {exc}", "-"
        finally:
            conn.close()

    def _reuse(
        self,
        connections: dict[tuple[str, int], http.client.HTTPConnection],
        host: str,
        port: int,
        path: str,
    ) -> tuple[bool, str, str]:
        conn = connections.get((host, port))
        if conn is not None:
            try:
                return self._answer(conn, path, {})
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()  # closed by the server while idle: retry once, as browsers do
                with self._lock:
                    self.result.retried += 1
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                del connections[(host, port)]
                return False, f"{exc.__class__.__name__}: {exc}", "-"
        conn = connections[(host, port)] = http.client.HTTPConnection(
            host, port, timeout=self.timeout
        )
        try:
            return self._answer(conn, path, {})
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            del connections[(host, port)]
            return False, f"{exc.__class__.__name__}: {exc}", "-"
