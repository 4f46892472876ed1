"""The stand-in backend honours the real app's interface (shared/clipper-app.md), so the
release tests exercise what the real backend would do: start-up checks, readiness that really
pings PostgreSQL and the cache (Valkey 8 here, as in production), and Go's graceful shutdown on
SIGTERM."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.support.data_stores import PostgresServer, ValkeyServer
from tests.support.docker import DockerEngine
from tests.support.procs import free_port, wait_until
from tests.support.release_host import ReleaseImages

pytestmark = pytest.mark.slow


@dataclass
class Backend:
    engine: DockerEngine
    name: str
    port: int

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, dict[str, object]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def logs(self) -> str:
        proc = self.engine.run(["logs", self.name], check=False)
        return proc.stdout + proc.stderr

    def state(self) -> tuple[str, int]:
        out = self.engine.run(
            ["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.name]
        ).stdout.split()
        return out[0], int(out[1])


@pytest.fixture(scope="module")
def app_env(postgres_server: PostgresServer, valkey_server: ValkeyServer) -> dict[str, str]:
    password = secrets.token_hex(12)
    postgres_server.create_database("standin_check", owner="standin_app", password=password)
    return {
        "DB_HOST": postgres_server.host,
        "DB_PORT": str(postgres_server.port),
        "DB_USER": "standin_app",
        "DB_PASSWORD": password,
        "DB_NAME": "standin_check",
        "DB_SSLMODE": "disable",
        "REDIS_HOST": valkey_server.host,
        "REDIS_PORT": str(valkey_server.port),
        "REDIS_PASSWORD": valkey_server.password,
        "MFA_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


@pytest.fixture
def run_backend(
    docker_engine: DockerEngine, release_images: ReleaseImages
) -> Iterator[Callable[..., Backend]]:
    """Start the stand-in backend on the host network with the given environment."""
    names: list[str] = []

    def start(env: dict[str, str], image: str = "v1") -> Backend:
        port = free_port()
        name = f"clipper-standin-check-{secrets.token_hex(3)}"
        names.append(name)
        full = {**env, "PORT": str(port)}
        args = ["run", "-d", "--name", name, "--network", "host"]
        for key in full:
            args += ["-e", key]
        subprocess.run(
            ["docker", *args, release_images.backend[image]],
            env={**docker_engine.env, **full},
            check=True,
            capture_output=True,
        )
        return Backend(docker_engine, name, port)

    yield start
    if names:
        docker_engine.run(["rm", "-f", *names], check=False)


def wait_exited(backend: Backend, timeout: float = 15.0) -> tuple[str, int]:
    wait_until(lambda: backend.state()[0] == "exited", timeout=timeout)
    return backend.state()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MFA_ENCRYPTION_KEY": None}, "MFA_ENCRYPTION_KEY is required"),
        ({"MFA_ENCRYPTION_KEY": "too-short"}, "must be 32 bytes"),
        ({"DB_PASSWORD": "wrong"}, "failed to connect to database"),
        ({"DB_PORT": "1"}, "failed to connect to database"),
        ({"REDIS_PASSWORD": "wrong"}, "failed to connect to redis"),
    ],
    ids=["no-mfa-key", "short-mfa-key", "bad-db-password", "no-database", "bad-redis-password"],
)
def test_the_backend_exits_at_start_without_its_database_redis_or_mfa_key(
    run_backend: Callable[..., Backend],
    app_env: dict[str, str],
    change: dict[str, str | None],
    message: str,
) -> None:
    env = {k: v for k, v in {**app_env, **change}.items() if v is not None}
    backend = run_backend(env)
    status, code = wait_exited(backend)
    assert status == "exited" and code == 1, backend.logs()
    assert message in backend.logs()


def test_readiness_really_pings_postgresql_and_redis(
    run_backend: Callable[..., Backend], app_env: dict[str, str], docker_engine: DockerEngine
) -> None:
    with ValkeyServer(docker_engine) as own_redis:
        env = {
            **app_env,
            "REDIS_HOST": own_redis.host,
            "REDIS_PORT": str(own_redis.port),
            "REDIS_PASSWORD": own_redis.password,
        }
        backend = run_backend(env)
        assert wait_until(lambda: _answers(backend), timeout=15), backend.logs()
        assert backend.get("/health/ready") == (
            200,
            {"status": "ready", "checks": {"database": "ok", "redis": "ok"}},
        )
    # The cache is gone now: readiness fails, liveness does not.
    status, body = backend.get("/health/ready")
    assert status == 503 and body == {"status": "not ready", "error": "redis unavailable"}
    assert backend.get("/health/live") == (200, {"status": "alive"})
    assert backend.get("/health") == (200, {"status": "healthy"})


def test_sigterm_refuses_new_connections_but_finishes_in_flight_requests(
    run_backend: Callable[..., Backend], app_env: dict[str, str]
) -> None:
    backend = run_backend(app_env)
    assert wait_until(lambda: _answers(backend), timeout=15), backend.logs()
    slow: dict[str, object] = {}

    def slow_request() -> None:
        slow["answer"] = backend.get("/api/v1/sleep?ms=2000")

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.5)  # the slow request is in flight
    started = time.monotonic()
    backend.engine.run(["kill", "--signal", "TERM", backend.name])
    assert wait_until(lambda: not _answers(backend), timeout=5), "the listener closes at once"
    worker.join(timeout=10)
    status, code = wait_exited(backend)
    took = time.monotonic() - started
    assert slow["answer"] == (200, {"slept_ms": 2000, "version": "v1"})
    assert (status, code) == ("exited", 0)
    assert 1.0 < took < 5.5, f"exits once the in-flight request is done ({took:.1f}s)"
    assert "drained; bye" in backend.logs()


def _answers(backend: Backend) -> bool:
    try:
        return backend.get("/health/live", timeout=1)[0] == 200
    except OSError:
        return False


def test_the_version_endpoint_shows_the_build_and_a_fingerprint_not_the_secret(
    run_backend: Callable[..., Backend], app_env: dict[str, str]
) -> None:
    backend = run_backend(app_env, image="v2")
    assert wait_until(lambda: _answers(backend), timeout=15), backend.logs()
    status, body = backend.get("/api/v1/version")
    assert status == 200 and body["version"] == "v2"
    assert app_env["MFA_ENCRYPTION_KEY"] not in json.dumps(body)
    assert app_env["DB_PASSWORD"] not in json.dumps(body)
    assert len(str(body["mfa_key_sha256"])) == 12
