"""Project-wide pytest setup: markers and fixtures that start real services on loopback.

Session-scoped fixtures start each service once per test run (the Docker engine and its base
image even persist across runs in the cache dir); they fail, never skip, when a package is
missing, so a CI machine without ``scripts/install-test-deps.sh`` shows up as red, not as green
with nothing tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    DockerEngine,
    NginxFactory,
    PostgresServer,
    SshHost,
    ValkeyServer,
    build_base_image,
)

_HOST_DIR = Path(__file__).resolve().parent / "host"


def pytest_configure(config: pytest.Config) -> None:
    """Register the project's markers (selecting by them is the caller's choice)."""
    config.addinivalue_line(
        "markers", "host: starts real services on this machine (see tests/support)"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds (Docker, image builds)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/host as ``host`` so ``-m 'not host'`` can leave it out."""
    for item in items:
        if _HOST_DIR in item.path.parents:
            item.add_marker(pytest.mark.host)


@pytest.fixture(scope="session")
def postgres_server(docker_engine: DockerEngine) -> Iterator[PostgresServer]:
    """PostgreSQL 17 with pgvector on 127.0.0.1; superuser ``admin_user``/``admin_password``."""
    with PostgresServer(docker_engine) as server:
        yield server


@pytest.fixture(scope="session")
def valkey_server(docker_engine: DockerEngine) -> Iterator[ValkeyServer]:
    """Plain-TCP Valkey 8 on 127.0.0.1 with ``requirepass`` (``.password``)."""
    with ValkeyServer(docker_engine) as server:
        yield server


@pytest.fixture(scope="session")
def tls_valkey_server(docker_engine: DockerEngine) -> Iterator[ValkeyServer]:
    """TLS-only Valkey 8 (plain port off, as DigitalOcean's) with a private CA at ``.ca_cert``."""
    with ValkeyServer(docker_engine, tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A dockerd whose images persist in the cache dir; ``.env`` carries DOCKER_HOST."""
    with DockerEngine() as engine:
        yield engine


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    """``local/clipper-base:1``: Debian minbase, busybox, python3, psycopg2, psql, curl."""
    return build_base_image(docker_engine)


@pytest.fixture(scope="session")
def ssh_host() -> Iterator[SshHost]:
    """sshd on 127.0.0.1 logging in to this machine as the current user with a generated key."""
    with SshHost() as host:
        yield host


@pytest.fixture
def nginx_factory() -> Iterator[NginxFactory]:
    """Call it for an unstarted NginxServer with a fresh prefix; all stop after the test."""
    factory = NginxFactory()
    try:
        yield factory
    finally:
        factory.close()
