"""clipper-release deploy on a real Docker engine, nginx, PostgreSQL 17 and Valkey 8.

Every test starts from release v1 live on the shared app host (tests/host/conftest.py) and,
where traffic matters, keeps steady load on the site through nginx the whole time, counting
every failed request with its reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

import pytest

from components.settings import DATABASE_EXTENSIONS
from tests.support.data_stores import PostgresServer, ValkeyServer
from tests.support.docker import DockerEngine
from tests.support.release_host import AppHost, ReleaseImages

pytestmark = pytest.mark.slow


def short_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def releases_json(host: AppHost) -> dict[str, Any]:
    return dict(json.loads((host.root / "state" / "releases.json").read_text()))


def colour_of(host: AppHost, version_answer: dict[str, Any]) -> str:
    port = version_answer["port"]
    return next(color for color, p in host.backend_ports.items() if p == port)


def test_a_deploy_under_load_serves_the_new_version_with_no_failed_request(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    old_colour = colour_of(host, host.served_version())
    host.use_images("v2", "v2", "v2")
    with host.load() as load:
        assert load.wait_for_requests(50), "the load is not flowing"
        proc = host.release("deploy")
        finished = time.monotonic()
        assert load.wait_for_requests(100)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert set(load.versions_since(finished)) == {"v2"}, load.result.summary() + host.nginx_errors()
    assert load.result.versions["v1"] > 0 and load.result.versions["v2"] > 0

    new_colour = colour_of(host, host.served_version())
    assert new_colour != old_colour
    containers = host.containers()
    prefix = f"clipper-t{host.token}"
    assert containers[f"{prefix}-{old_colour}-backend"] == "exited", "old colour kept, stopped"
    assert containers[f"{prefix}-{new_colour}-backend"] == "running"
    record = releases_json(host)
    active = next(r for r in record["releases"] if r["id"] == record["active"])
    assert active["version"] == "v2-" + host.token and active["color"] == new_colour
    assert active["activated_at"].endswith("Z")
    assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == "2|f"
    assert f"deployed {record['active']} on {new_colour}" in proc.stdout


def test_the_backend_receives_every_variable_of_the_env_file_byte_for_byte(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    answer = host.served_version()
    received: dict[str, str] = answer["env_sha256"]
    # The JWT PEM pair (multi-line) and the Twitch secret ($, quotes, #, \, edge spaces) are
    # the values docker's --env-file would have mangled.
    assert "\n" in host.env["JWT_PRIVATE_KEY"] and "$" in host.env["TWITCH_CLIENT_SECRET"]
    for name, value in host.env.items():
        if name == "PORT":
            continue  # each colour listens on its own port
        assert received.get(name) == short_sha(value), f"{name} did not arrive intact"
    assert set(received) == set(host.env), "the backend reads exactly what the env file holds"
    assert answer["port"] in host.backend_ports.values()


def test_deploying_the_live_release_again_changes_nothing(app_host_on_v1: AppHost) -> None:
    host = app_host_on_v1
    before = host.engine.run(["ps", "-q", "--filter", f"name=^clipper-t{host.token}-"]).stdout
    proc = host.release("deploy")
    assert proc.returncode == 0, proc.stderr
    assert "already deployed" in proc.stdout
    after = host.engine.run(["ps", "-q", "--filter", f"name=^clipper-t{host.token}-"]).stdout
    assert sorted(before.split()) == sorted(after.split())


def test_a_never_ready_image_fails_the_deploy_with_the_reason_while_the_old_version_serves(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.write_config(ready_timeout_seconds=4)
    host.use_images("never-ready", "v2", "v1")
    active = colour_of(host, host.served_version())
    with host.load() as load:
        assert load.wait_for_requests(30)
        proc = host.release("deploy")
        finished = time.monotonic()
        assert load.wait_for_requests(30)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    reason = proc.stderr
    assert "did not become ready: not ready after 4s" in reason
    assert "/health/ready -> HTTP 503" in reason and "never to be ready" in reason
    assert "last log lines of" in reason and "listening on 127.0.0.1" in reason
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert set(load.versions_since(finished)) == {"v1"}
    prefix = f"clipper-t{host.token}"
    assert host.containers() == {
        f"{prefix}-{active}-backend": "running",
        f"{prefix}-{active}-frontend": "running",
    }, "the failed colour's containers are removed, the live ones untouched"


def test_a_crashing_image_reports_its_exit_code_and_last_log_lines(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("crash", "v2", "v1")
    with host.load() as load:
        started = time.monotonic()
        proc = host.release("deploy")
        took = time.monotonic() - started
    assert proc.returncode == 1
    assert "a container stopped" in proc.stderr and "exit code 3" in proc.stderr
    assert "fatal: stand-in built to crash at start" in proc.stderr
    assert took < host.config["ready_timeout_seconds"], "a dead container fails fast"
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert host.served_version()["version"] == "v1"


def test_a_failing_migration_moves_no_traffic_and_shows_the_sql_error(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "bad")
    before = host.containers()
    with host.load() as load:
        proc = host.release("deploy")
        assert load.wait_for_requests(30)
    assert proc.returncode == 1
    assert "migrations failed" in proc.stderr and "no traffic moved" in proc.stderr
    assert 'relation "no_such_table" does not exist' in proc.stderr
    assert "starting" not in proc.stdout, "no container of the new release was started"
    assert host.containers() == before
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert set(load.result.versions) == {"v1"}
    # golang-migrate's semantics: the failed file left nothing behind but a dirty mark...
    column = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'broken_flag'"
    assert host.psql(column).strip() == "0"
    assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == "3|t"
    # ...and the next deploy refuses until an operator forces the version.
    again = host.release("deploy")
    assert again.returncode == 1 and "Dirty database version 3" in again.stderr


def test_migrate_force_clears_the_dirty_mark_so_the_fixed_release_deploys(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "bad")
    failed = host.release("deploy")
    assert failed.returncode == 1
    assert "`clipper-release migrate-force <last good version>`" in failed.stderr
    assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == "3|t"
    # 000003 ran in one transaction, so nothing of it is left to repair: 2 is the last good one.
    forced = host.release("migrate-force", "2")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "version 3 (dirty)" in forced.stdout, "it shows what it forced from"
    assert "schema version forced to 2; now version 2 (clean)" in forced.stdout
    assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == "2|f"
    assert not [n for n in host.containers() if n.endswith("-migrate")], "its container is gone"
    # The fixed release (the broken migration dropped) now deploys.
    host.use_images("v2", "v2", "v2")
    fixed = host.release("deploy")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert host.wait_serving("v2"), host.nginx_errors()


def test_a_first_deploy_on_a_new_cluster_lets_the_app_user_create_its_tables(
    docker_engine: DockerEngine,
    postgres_server: PostgresServer,
    valkey_server: ValkeyServer,
    release_images: ReleaseImages,
) -> None:
    """As on a new DigitalOcean cluster, the database belongs to the admin, and PostgreSQL 15+
    lets the app user create nothing in schema public: the deploy creates every extension
    (pgvector's `vector` too) and grants it, as the admin, before golang-migrate (as the app
    user) creates the tables, which are then the app's."""
    with AppHost(
        docker_engine, postgres_server, valkey_server, release_images, app_owns_database=False
    ) as host:
        user = host.env["DB_USER"]
        can_create = f"SELECT has_schema_privilege('{user}', 'public', 'CREATE')"
        assert host.psql(can_create).strip() == "f", "no CREATE on public before the deploy"
        owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        assert host.psql(owner).strip() == postgres_server.admin_user, "the admin's database"

        proc = host.release("deploy")

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert host.psql(can_create).strip() == "t"
        extensions = host.psql("SELECT extname FROM pg_extension").split()
        assert set(DATABASE_EXTENSIONS) <= set(extensions), extensions
        assert host.psql("SELECT '[1,2]'::vector <-> '[1,4]'::vector").strip() == "2"
        assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == "1|f"
        owners = host.psql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        assert owners.split() == [user], "the migrations' tables belong to the app user"
        assert host.wait_stable("v1"), host.nginx_errors()


def test_a_secret_rotation_reaches_the_running_app_with_no_failed_request(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    before = host.served_version()
    new_key = base64.b64encode(secrets.token_bytes(32)).decode()
    rotated = {**host.env, "MFA_ENCRYPTION_KEY": new_key, "TWITCH_CLIENT_SECRET": "rotated $ecret"}
    with host.load() as load:
        assert load.wait_for_requests(30)
        host.write_backend_env(rotated)
        proc = host.release("deploy")
        assert load.wait_for_requests(30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    after = host.served_version()
    assert after["version"] == "v1", "same images: only the environment changed"
    assert after["mfa_key_sha256"] == short_sha(new_key) != before["mfa_key_sha256"]
    assert after["env_sha256"]["TWITCH_CLIENT_SECRET"] == short_sha("rotated $ecret")
    assert colour_of(host, after) != colour_of(host, before), "rolled out blue-green"


def test_status_shows_the_active_colour_versions_and_health_as_text_and_json(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    text = host.release("status")
    assert text.returncode == 0, text.stdout + text.stderr
    status = host.status()
    active = status["active_color"]
    assert host.include.read_text() == host.config["colors"][active]["upstreams"]
    assert status["healthy"] is True
    assert status["colors"][active]["ready"] is True
    backend = status["colors"][active]["containers"]["backend"]
    assert backend["image"] == host.image("backend", "v1") and backend["state"] == "running"
    assert status["releases"][0]["id"] == status["active_release"]
    assert f"active colour:  {active}" in text.stdout and "healthy:        yes" in text.stdout
    assert status["active_release"] in text.stdout and "deploy lock: free" in text.stdout

    # With the active colour down, status says so and exits non-zero (usable as a check).
    names = [f"clipper-t{host.token}-{active}-{role}" for role in ("backend", "frontend")]
    host.engine.run(["stop", "-t", "1", *names])
    try:
        down = host.release("status")
        assert down.returncode == 1 and "healthy:        NO" in down.stdout
    finally:
        host.engine.run(["start", *names])


def test_releases_beyond_release_keep_are_pruned_with_their_images(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.write_config(release_keep=1)
    first = host.status()["active_release"]
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    host.write_backend_env({**host.env, "TWITCH_CLIENT_SECRET": "another"})
    proc = host.release("deploy")
    assert proc.returncode == 0, proc.stderr
    assert f"pruned 1 old release(s): {first}" in proc.stdout
    ids = [r["id"] for r in releases_json(host)["releases"]]
    assert len(ids) == 2 and first not in ids
    assert not (host.root / "state" / "migrations" / first).exists()
    assert not host.engine.image_exists(host.image("backend", "v1")), "v1's tag is pruned"
    assert host.engine.image_exists(host.image("backend", "v2"))


def test_an_include_nginx_rejects_is_rolled_back_and_the_old_version_keeps_serving(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    active = colour_of(host, host.served_version())
    idle = "green" if active == "blue" else "blue"
    live_include = host.include.read_text()
    colors = json.loads(json.dumps(host.config["colors"]))
    colors[idle]["upstreams"] = "upstream clipper_backend { server 127.0.0.1:1 no_such_flag; }\n"
    host.write_config(colors=colors)
    host.use_images("v2", "v2", "v2")
    with host.load() as load:
        proc = host.release("deploy")
        assert load.wait_for_requests(40)
    assert proc.returncode == 1
    assert f"nginx rejected the config with the {idle} include" in proc.stderr
    assert "no_such_flag" in proc.stderr, "nginx's own message is shown"
    assert host.include.read_text() == live_include, "the previous include is back"
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert set(load.result.versions) == {"v1"}
