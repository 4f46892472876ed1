"""Stand-in for Clipper's Go backend: the same environment, start-up checks, health endpoints
and SIGTERM drain as the real app (see shared/clipper-app.md), in a few lines of Python.

- Reads PORT, DB_HOST/PORT/USER/PASSWORD/NAME/SSLMODE, REDIS_HOST/PORT/PASSWORD and
  MFA_ENCRYPTION_KEY (32 bytes, raw or base64); exits 1 at start when the key is missing or
  the database or Redis cannot be reached, like the real app.
- `/health`, `/api/v1/health`, `/health/live`: no checks. `/health/ready`: pings PostgreSQL,
  then Redis (3 s each); 503 `{"status":"not ready","error":...}` when one fails.
- `/api/v1/version`: the version baked in at build time and a short, non-secret fingerprint of
  the environment it runs with, so a test sees a secret rotation arrive.
- `/api/v1/sleep?ms=N`: a slow request, to prove in-flight requests survive a drain.
- SIGTERM: stop accepting, finish in-flight requests for up to 5 s, exit (Go's Shutdown).

- `/api/v1/watch-parties/{id}/ws`: a WebSocket (tests/images/common/websocket.py) that
  echoes, and closes with 1001 "going away" on SIGTERM.
- `/tmp/slow-ready` (touched with `docker exec`): readiness answers are slow (3.5 s) for 20 s.
- `/api/v1/clips`: counts the clips table (a read the app's pages make), so a test sees queries
  queue behind a migration's lock.

Build args pick a variant: VERSION (v1, v2, ...), MODE (normal, never-ready, crash, ready-once:
answers ready once, then fails every request, like a backend that dies right after its check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import psycopg2  # type: ignore[import-untyped]
from graceful_http import GracefulServer, Handler, Route, log, serve
from websocket import watch_party

VERSION = os.environ.get("CLIPPER_STANDIN_VERSION", "dev")
MODE = os.environ.get("CLIPPER_STANDIN_MODE", "normal")
DRAIN_SECONDS = 5.0
CHECK_TIMEOUT = 3
# `docker exec NAME touch /tmp/slow-ready`: for 20 s, /health/ready answers take 3.5 s.
SLOW_READY_FLAG = "/tmp/slow-ready"
SLOW_READY_SECONDS = 20.0
# Every variable the real backend reads (config/config.go); the fingerprint covers them all.
APP_VARIABLES = (
    "PORT", "GIN_MODE", "ENVIRONMENT", "BASE_URL", "DB_HOST", "DB_PORT", "DB_USER",
    "DB_PASSWORD", "DB_NAME", "DB_SSLMODE", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD",
    "REDIS_DB", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "MFA_ENCRYPTION_KEY", "TWITCH_CLIENT_ID",
    "TWITCH_CLIENT_SECRET", "TWITCH_REDIRECT_URI", "CORS_ALLOWED_ORIGINS",
    "WEBSOCKET_ALLOWED_ORIGINS", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
    "SENDGRID_API_KEY", "OPENAI_API_KEY", "SENTRY_DSN", "OPENSEARCH_URL",
    "OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD",
    # The integrations' on-switches and the rest of their settings (config/config.go).
    "SENTRY_ENABLED", "EMAIL_ENABLED", "EMBEDDING_ENABLED", "FEATURE_PREMIUM_SUBSCRIPTIONS",
    "STRIPE_WEBHOOK_SECRET_ALT", "STRIPE_WEBHOOK_SECRETS", "STRIPE_PRO_MONTHLY_PRICE_ID",
    "STRIPE_PRO_YEARLY_PRICE_ID", "STRIPE_SUCCESS_URL", "STRIPE_CANCEL_URL",
    "SENDGRID_WEBHOOK_PUBLIC_KEY", "SENTRY_ENVIRONMENT", "OPENSEARCH_INSECURE_SKIP_VERIFY",
)  # fmt: skip


def short_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def mfa_key() -> bytes:
    """The 32-byte MFA key, raw or base64, as the real app accepts it; exit when absent."""
    raw = os.environ.get("MFA_ENCRYPTION_KEY", "")
    if not raw:
        log("fatal: MFA_ENCRYPTION_KEY is required")
        sys.exit(1)
    if len(raw.encode()) == 32:
        return raw.encode()
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 32:
        log("fatal: MFA_ENCRYPTION_KEY must be 32 bytes, raw or base64")
        sys.exit(1)
    return decoded


def db_connect() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(
        host=os.environ.get("DB_HOST", "localhost"),
        port=int(os.environ.get("DB_PORT", "5432")),
        user=os.environ.get("DB_USER", "clipper"),
        password=os.environ.get("DB_PASSWORD", ""),
        dbname=os.environ.get("DB_NAME", "clipper"),
        sslmode=os.environ.get("DB_SSLMODE", "disable"),
        connect_timeout=CHECK_TIMEOUT,
    )
    conn.autocommit = True
    # A SET, not the `options` startup parameter: PgBouncer (DigitalOcean's pool) refuses that,
    # and the real app (pgx) sends none.
    with conn.cursor() as cur:
        cur.execute(f"SET statement_timeout = {CHECK_TIMEOUT * 1000}")
    return conn


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def redis_ping() -> None:
    """AUTH (when a password is set), SELECT REDIS_DB, PING, over plain TCP like the app."""
    host = os.environ.get("REDIS_HOST", "localhost")
    port = int(os.environ.get("REDIS_PORT", "6379"))
    password = os.environ.get("REDIS_PASSWORD", "")
    commands = []
    if password:
        commands.append(_resp("AUTH", password))
    commands.append(_resp("SELECT", os.environ.get("REDIS_DB") or "0"))
    commands.append(_resp("PING"))
    with socket.create_connection((host, port), timeout=CHECK_TIMEOUT) as sock:
        sock.sendall(b"".join(commands))
        reply = b""
        while reply.count(b"\r\n") < len(commands):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    lines = reply.split(b"\r\n")[: len(commands)]
    for line in lines:
        if line.startswith(b"-"):
            raise ConnectionError(line[1:].decode(errors="replace"))
    if not lines or lines[-1] != b"+PONG":
        raise ConnectionError(f"unexpected reply {reply[:80]!r}")


_local = threading.local()


def db_ping() -> None:
    conn = getattr(_local, "conn", None)
    try:
        if conn is None or conn.closed:
            conn = _local.conn = db_connect()
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    except psycopg2.Error:
        _local.conn = None
        raise


def as_json(status: int, doc: object) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(doc).encode()


def health(_: Handler) -> tuple[int, str, bytes]:
    return as_json(200, {"status": "healthy"})


def live(_: Handler) -> tuple[int, str, bytes]:
    return as_json(200, {"status": "alive"})


_ready_answers = 0


def slow_ready() -> bool:
    """Whether the slow-ready flag was set in the last SLOW_READY_SECONDS (it expires, so a
    container kept for rollback and started again later is not slow any more)."""
    try:
        return time.time() - os.path.getmtime(SLOW_READY_FLAG) < SLOW_READY_SECONDS
    except OSError:
        return False


def ready(_: Handler) -> tuple[int, str, bytes]:
    global _ready_answers  # noqa: PLW0603 (one counter per process, for MODE ready-once)
    try:
        db_ping()
    except psycopg2.Error:
        return as_json(503, {"status": "not ready", "error": "database unavailable"})
    try:
        redis_ping()
    except (OSError, ConnectionError):
        return as_json(503, {"status": "not ready", "error": "redis unavailable"})
    if MODE == "never-ready":
        return as_json(503, {"status": "not ready", "error": "stand-in built never to be ready"})
    if slow_ready():
        # Slow answers, as the real app's DB and Redis pings can take up to 3 s each.
        time.sleep(CHECK_TIMEOUT + 0.5)
    _ready_answers += 1
    return as_json(200, {"status": "ready", "checks": {"database": "ok", "redis": "ok"}})


def env_fingerprint() -> str:
    """Covers every variable but PORT, which differs by colour on purpose."""
    names = [name for name in APP_VARIABLES if name != "PORT"]
    return short_sha("\n".join(f"{k}={os.environ.get(k, '')}" for k in names))


def version(_: Handler) -> tuple[int, str, bytes]:
    return as_json(
        200,
        {
            "version": VERSION,
            "env_fingerprint": env_fingerprint(),
            # Per variable, so a test can name the one that did not arrive intact.
            "env_sha256": {k: short_sha(os.environ[k]) for k in APP_VARIABLES if k in os.environ},
            "mfa_key_sha256": short_sha(os.environ.get("MFA_ENCRYPTION_KEY", "")),
            "jwt_public_key_sha256": short_sha(os.environ.get("JWT_PUBLIC_KEY", "")),
            "port": int(os.environ.get("PORT", "8080")),
        },
    )


def sleep(handler: Handler) -> tuple[int, str, bytes]:
    query = parse_qs(urlsplit(handler.path).query)
    millis = min(int(query.get("ms", ["100"])[0]), 20000)
    time.sleep(millis / 1000)
    return as_json(200, {"slept_ms": millis, "version": VERSION})


def clips(_: Handler) -> tuple[int, str, bytes]:
    conn = db_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM clips")
            (count,) = cur.fetchone()
    except psycopg2.Error as exc:
        return as_json(500, {"error": str(exc).strip().splitlines()[0]})
    finally:
        conn.close()
    return as_json(200, {"clips": count, "version": VERSION})


def failing_after_one_ready(route: Route) -> Route:
    """MODE ready-once: after the first ready answer, every request fails."""

    def guarded(handler: Handler) -> tuple[int, str, bytes]:
        if _ready_answers >= 1:
            return as_json(500, {"error": "stand-in built to fail after one ready answer"})
        return route(handler)

    return guarded


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    log(f"clipper stand-in backend {VERSION} ({MODE}) starting on :{port}")
    mfa_key()
    if MODE == "crash":
        log("fatal: stand-in built to crash at start")
        sys.exit(3)
    try:
        db_ping()
    except psycopg2.Error as exc:
        log(f"fatal: failed to connect to database: {str(exc).strip()}")
        sys.exit(1)
    try:
        redis_ping()
    except (OSError, ConnectionError) as exc:
        log(f"fatal: failed to connect to redis: {exc}")
        sys.exit(1)
    Handler.routes = {
        "/health": health,
        "/api/v1/health": health,
        "/health/live": live,
        "/health/ready": ready,
        "/api/v1/version": version,
        "/api/v1/sleep": sleep,
        "/api/v1/clips": clips,
    }
    if MODE == "ready-once":
        Handler.routes = {path: failing_after_one_ready(r) for path, r in Handler.routes.items()}
    Handler.upgrades = [(re.compile(r"/api/v1/watch-parties/[^/]+/ws"), watch_party)]
    Handler.extra_headers = {"X-Clipper-Version": VERSION}
    # The Go app binds :PORT; on the host network the stand-in keeps to loopback, where nginx
    # reaches it, so a test never opens a port on the machine's other interfaces.
    server = GracefulServer(("127.0.0.1", port), Handler)
    log(f"listening on 127.0.0.1:{port}")
    serve(server, DRAIN_SECONDS, "backend")


if __name__ == "__main__":
    main()
