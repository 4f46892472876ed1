"""Fixtures for the release tests: the stand-in images, built once, and one shared app host.

The app host (tests/support/release_host.py) is built once per session on the shared Docker
engine, PostgreSQL 17 and Valkey 8; each release test starts with `app_host_on_v1`, which brings it
back to a known state (release v1 live, baseline env file and deploy.json, a clean schema) by
running the real `clipper-release deploy`, a no-op when it is already there. That keeps the
release suite to one database, one nginx and one set of images instead of one per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.data_stores import PostgresServer, ValkeyServer
from tests.support.docker import DockerEngine
from tests.support.imitation_host import imitation_host_image
from tests.support.release_host import AppHost, ReleaseImages, build_release_images


@pytest.fixture(scope="session")
def release_images(docker_engine: DockerEngine, base_image: str) -> ReleaseImages:
    """The stand-in backend, frontend, migrations and golang-migrate images (local tags)."""
    return build_release_images(docker_engine, base_image)


@pytest.fixture(scope="session")
def app_host(
    docker_engine: DockerEngine,
    postgres_server: PostgresServer,
    valkey_server: ValkeyServer,
    release_images: ReleaseImages,
) -> Iterator[AppHost]:
    """One app host for the session: database, Valkey login, env files, deploy.json, nginx."""
    with AppHost(docker_engine, postgres_server, valkey_server, release_images) as host:
        yield host


@pytest.fixture
def app_host_on_v1(app_host: AppHost) -> AppHost:
    """The shared host with release v1 live, its baseline env and settings, schema clean."""
    host = app_host
    host.retag()  # a prune in an earlier test may have removed an old release's tags
    host.write_config(**host.baseline_config())
    host.write_backend_env(host.baseline)
    # A test that broke a migration leaves golang-migrate's row dirty: `migrate force`.
    host.psql(
        "DO $$ BEGIN IF to_regclass('schema_migrations') IS NOT NULL THEN "
        "UPDATE schema_migrations SET dirty = false, version = LEAST(version, 2); END IF; END $$;"
    )
    proc = host.release("deploy")
    assert proc.returncode == 0, f"baseline deploy failed:\n{proc.stdout}\n{proc.stderr}"
    assert host.wait_stable("v1"), host.nginx_errors()
    return host


@pytest.fixture(scope="session")
def app_host_image(docker_engine: DockerEngine, base_image: str) -> str:
    """The imitation droplet's image (tests/support/imitation_host.py), built once per engine."""
    return imitation_host_image(docker_engine, base_image)
