"""Looking at a colour from outside: HTTP probes on loopback, and the TCP connections left."""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Answer:
    """One HTTP answer (or none): its status, the first bytes of its body and its headers."""

    ok: bool
    text: str
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased


def get(port: int, path: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> Answer:
    """GET http://127.0.0.1:port/path on a fresh connection (no proxy)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "clipper-release", "Connection": "close"})
        response = conn.getresponse()
        body = response.read(2000).decode("utf-8", errors="replace")
        short = body[:400].strip().replace("\n", " ")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(
            response.status == 200, f"HTTP {response.status} {short}".strip(), body, headers
        )
    except (OSError, http.client.HTTPException) as exc:
        return Answer(False, f"no answer on 127.0.0.1:{port} ({exc.__class__.__name__}: {exc})")
    finally:
        conn.close()


def probe(port: int, path: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(ready, what it answered) for a health URL."""
    answer = get(port, path, timeout)
    return answer.ok, answer.text


def split_loopback_url(url: str) -> tuple[int, str]:
    """`http://127.0.0.1:PORT/PATH?Q` -> (PORT, "/PATH?Q")."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return int(parts.port or 80), path + (f"?{parts.query}" if parts.query else "")


def established_connections(ports: set[int]) -> int:
    """Established TCP connections whose server side is one of `ports` (from /proc/net)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # fields[1] is local "ADDR:PORT" in hex, fields[3] the state (01: ESTABLISHED).
            if (
                len(fields) > 3
                and fields[3] == "01"
                and int(fields[1].rsplit(":", 1)[1], 16) in ports
            ):
                count += 1
    return count
