"""clipper-release's decisions, without Docker: colours, fingerprints, rollback targets,
pruning, golang-migrate's output and deploy.json validation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clipper import decisions, envfile, errors, host, lock, migrations, release_cli, release_config

from components.renderers.deploy_config import render_deploy_config
from tests.support.release_host import settings_for
from tests.support.release_records import IMAGES, RUNTIME


@pytest.fixture(scope="module")
def config() -> Any:
    doc = json.loads(render_deploy_config(settings_for("staging")))
    return release_config.parse_config(doc, Path("/etc/clipper/deploy.json"))


# ------------------------------------------------------------------------------ colours


def test_the_include_on_disk_names_the_active_colour(config: Any) -> None:
    for color in ("blue", "green"):
        text = config.colors[color].upstreams
        assert decisions.color_of_include(text, config.colors) == color
    assert decisions.color_of_include(None, config.colors) is None


def test_a_hand_edited_include_is_still_recognised_by_its_port(config: Any) -> None:
    edited = "upstream clipper_backend { server 127.0.0.1:8082; }\n"
    assert decisions.color_of_include(edited, config.colors) == "green"


def test_an_include_pointing_nowhere_stops_the_deploy(config: Any) -> None:
    with pytest.raises(errors.HostError, match="neither colour"):
        decisions.color_of_include("upstream x { server 10.0.0.1:80; }\n", config.colors)


@pytest.mark.parametrize(
    ("disk", "ready", "active"),
    [
        ("blue", {"blue": True, "green": False}, "blue"),
        ("blue", {"blue": True, "green": True}, "blue"),  # green still draining
        ("green", {"blue": True, "green": False}, "blue"),  # a killed switch to a dead colour
        ("green", {"blue": False, "green": False}, "green"),  # nothing serves: trust the disk
        (None, {"blue": False, "green": False}, "blue"),  # the very first deploy
        (None, {"blue": False, "green": True}, "green"),
    ],
)
def test_the_active_colour_is_the_one_that_can_serve(
    disk: str | None, ready: dict[str, bool], active: str
) -> None:
    assert decisions.choose_active(disk, ready) == active


def test_the_idle_colour_is_the_other_one() -> None:
    assert decisions.other_color("blue") == "green"
    assert decisions.other_color("green") == "blue"


# ------------------------------------------------------------------------------ releases


def test_the_fingerprint_changes_with_any_image_the_env_or_the_container_options() -> None:
    base = decisions.release_fingerprint(IMAGES, "e" * 64, RUNTIME)
    assert base == decisions.release_fingerprint(dict(reversed(IMAGES.items())), "e" * 64, RUNTIME)
    for key, ref in IMAGES.items():
        changed = {**IMAGES, key: ref + "-rc1"}
        assert decisions.release_fingerprint(changed, "e" * 64, RUNTIME) != base
    assert decisions.release_fingerprint(IMAGES, "f" * 64, RUNTIME) != base
    assert decisions.release_fingerprint(IMAGES, "e" * 64, {**RUNTIME, "port_env": "X"}) != base


def test_a_release_record_names_the_version_and_holds_no_secret() -> None:
    env = {"DB_PASSWORD": "hunter2-very-secret", "MFA_ENCRYPTION_KEY": "k" * 32}
    record = decisions.release_record(IMAGES, env, RUNTIME)
    assert record["version"] == "v1.4.0"
    assert record["id"].startswith("v1.4.0-") and len(record["id"]) == len("v1.4.0-") + 8
    assert "hunter2" not in json.dumps(record)
    assert record["env_sha256"] == envfile.env_digest(env)


@pytest.mark.parametrize(
    ("ref", "version"),
    [
        ("ghcr.io/org/backend:v1.2.3", "v1.2.3"),
        ("registry.example.com:5000/org/backend:2026.03.1", "2026.03.1"),
        ("ghcr.io/org/backend:v1@sha256:" + "b" * 64, "v1"),
        ("ghcr.io/org/backend@sha256:" + "c" * 64, "sha256:cccccccccccc"),
    ],
)
def test_the_version_shown_is_the_image_tag(ref: str, version: str) -> None:
    assert decisions.image_version(ref) == version


def _records(*ids: str) -> list[dict[str, Any]]:
    return [{"id": rid, "images": {"backend": f"img:{rid}"}} for rid in ids]


def test_rollback_goes_to_the_release_before_the_active_one() -> None:
    releases = _records("r1", "r2", "r3")
    assert decisions.rollback_target(releases, "r3") == releases[1]
    assert decisions.rollback_target(releases, "r2") == releases[0]  # a second one walks back
    assert decisions.rollback_target(releases, "r1") is None
    assert decisions.rollback_target([], None) is None


def test_pruning_keeps_the_active_release_and_the_newest_others() -> None:
    releases = _records("r1", "r2", "r3", "r4", "r5")
    kept, dropped = decisions.prune_releases(releases, "r5", 2)
    assert [r["id"] for r in kept] == ["r3", "r4", "r5"]
    assert [r["id"] for r in dropped] == ["r1", "r2"]
    # After a rollback to r2 the active release is kept even though it is old.
    kept, dropped = decisions.prune_releases(releases, "r2", 2)
    assert [r["id"] for r in kept] == ["r2", "r4", "r5"]


def test_pruning_never_removes_an_image_a_kept_release_uses() -> None:
    dropped = [{"id": "old", "images": {"backend": "b:1", "migrate": "m@sha256:1"}}]
    kept = [{"id": "new", "images": {"backend": "b:2", "migrate": "m@sha256:1"}}]
    assert decisions.images_to_remove(dropped, kept) == ["b:1"]


# ------------------------------------------------------------------------------ migrations


def test_the_newest_migration_is_read_from_golang_migrate_file_names() -> None:
    names = ["000001_a.up.sql", "000001_a.down.sql", "000012_b.up.sql", "README", ".keep"]
    assert migrations.newest_migration(names) == 12
    assert migrations.newest_migration([]) == 0


@pytest.mark.parametrize(
    ("output", "parsed"),
    [("3\n", (3, False)), ("12 (dirty)\n", (12, True)), ("error: no migration\n", (None, False))],
)
def test_golang_migrates_version_output_is_understood(
    output: str, parsed: tuple[int | None, bool]
) -> None:
    assert migrations.parse_migrate_version(output) == parsed


def test_an_unreadable_schema_version_stops_the_deploy_with_migrates_words() -> None:
    with pytest.raises(errors.HostError, match="failed to open database"):
        migrations.parse_migrate_version("error: failed to open database: connection refused\n")


APP_ENV = {
    "DB_HOST": "pool.db.internal",  # the session pool (dbConnection: session-pool)
    "DB_PORT": "25061",
    "DB_USER": "app user",
    "DB_PASSWORD": "s3cret",
    "DB_NAME": "clipper-app",  # the pool's name
    "DB_SSLMODE": "require",
}
ADMIN_ENV = {
    "PGHOST": "db.internal",
    "PGPORT": "25060",
    "PGUSER": "doadmin",
    "PGPASSWORD": "admin-s3cret",
    "PGDATABASE": "clipper",
    "PGSSLMODE": "require",
}


def test_migrations_go_to_the_cluster_directly_as_the_app_user_with_no_password_in_the_url() -> (
    None
):
    login = migrations.migrate_login(APP_ENV, ADMIN_ENV)
    assert login.url == "postgres://app%20user@db.internal:25060/clipper?sslmode=require"
    assert login.password == "s3cret"
    assert login.target == "app%20user@db.internal:25060/clipper"
    for secret in ("s3cret", "admin-s3cret"):
        assert secret not in login.url


def test_a_migrate_login_without_the_direct_address_is_refused() -> None:
    with pytest.raises(errors.ConfigError, match="admin env file lacks PGHOST"):
        migrations.migrate_login(APP_ENV, {**ADMIN_ENV, "PGHOST": ""})
    with pytest.raises(errors.ConfigError, match="backend env file lacks DB_USER"):
        migrations.migrate_login({**APP_ENV, "DB_USER": ""}, ADMIN_ENV)


def test_the_admin_creates_the_extensions_then_lets_the_app_user_create_in_public() -> None:
    sql = migrations.database_setup_sql(["pgcrypto", "ltree"], "clipper")
    assert sql.splitlines() == [
        'CREATE EXTENSION IF NOT EXISTS "pgcrypto";',
        'CREATE EXTENSION IF NOT EXISTS "ltree";',
        'GRANT CREATE, USAGE ON SCHEMA public TO "clipper";',
    ]
    # The role name comes from a file: it stays one quoted identifier whatever it holds.
    hostile = migrations.database_setup_sql([], 'x"; DROP DATABASE clipper; --')
    assert hostile == 'GRANT CREATE, USAGE ON SCHEMA public TO "x""; DROP DATABASE clipper; --";\n'
    with pytest.raises(errors.ConfigError):
        migrations.quote_ident("")


# deploy.json's docker prefix (`docker --config /etc/clipper/registry`): what each call starts with.
DOCKER_ARGC = len(json.loads(render_deploy_config(settings_for("staging")))["commands"]["docker"])


class FakeDocker:
    """Records the docker CLI calls clipper-release makes; answers like an engine would."""

    def __init__(self, running: set[str] | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, str] | None]] = []
        self.running = running or set()

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        env = kwargs.get("env")
        self.calls.append((list(argv), dict(env) if env is not None else None))
        args = argv[DOCKER_ARGC:]
        if args[:2] == ["container", "inspect"]:
            docs = [
                {"Name": f"/{name}", "State": {"Status": "running", "Running": True}}
                for name in args[2:]
                if name in self.running
            ]
            missing = "" if docs else "Error: No such container"
            return subprocess.CompletedProcess(argv, 0 if docs else 1, json.dumps(docs), missing)
        if args[0] == "start":
            return subprocess.CompletedProcess(argv, 0, "", "1/u create_clips (3.1ms)\n")
        return subprocess.CompletedProcess(argv, 0, "", "")

    @property
    def commands(self) -> list[list[str]]:
        return [argv[DOCKER_ARGC:] for argv, _ in self.calls]


def _migrate_with(
    config: Any, monkeypatch: pytest.MonkeyPatch, fake: FakeDocker
) -> subprocess.CompletedProcess[str]:
    monkeypatch.setattr(host, "run", fake)
    login = migrations.migrate_login(APP_ENV, ADMIN_ENV)
    result: subprocess.CompletedProcess[str] = host.Host(config).migrate(
        "migrate/migrate:v4.17.0", login, Path("/var/lib/clipper/migrations/v1-abc"), "up"
    )
    return result


def test_golang_migrate_gets_the_migrations_copied_in_not_bind_mounted(
    config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDocker()
    result = _migrate_with(config, monkeypatch, fake)
    assert result.returncode == 0 and "create_clips" in result.stderr
    runner = "clipper-migrate"
    create = next(c for c in fake.commands if c[0] == "create")
    assert create == [
        "create", "--name", runner, "--network", "host", "-e", "PGPASSWORD", "-e", "PGOPTIONS",
        "migrate/migrate:v4.17.0", "-path", "/migrations",
        "-database", "postgres://app%20user@db.internal:25060/clipper?sslmode=require", "up",
    ]  # fmt: skip
    assert "-v" not in create and not any(":/migrations" in arg for arg in create)
    steps = [c for c in fake.commands if c[0] != "container"]
    assert steps[1:] == [
        create,
        ["cp", "/var/lib/clipper/migrations/v1-abc/.", f"{runner}:/migrations"],
        ["start", "--attach", runner],
        ["rm", runner],  # not -f: an interrupted migration is left to finish
    ]
    assert steps[0] == ["rm", "-f", runner], "what a killed run left is cleared first"
    # The password reaches docker only through its environment, on `create`.
    for argv, env in fake.calls:
        assert "s3cret" not in " ".join(argv)
        if argv[DOCKER_ARGC] == "create":
            assert env is not None and env["PGPASSWORD"] == "s3cret"
            # Bounded lock waits: the migration fails alone instead of queueing the site.
            assert env["PGOPTIONS"] == "-c lock_timeout=1s -c statement_timeout=15min"


def test_a_migration_left_running_by_a_killed_deploy_is_waited_for_not_cut_short(
    config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDocker(running={"clipper-migrate"})
    _migrate_with(config, monkeypatch, fake)
    steps = [c for c in fake.commands if c[0] != "container"]
    assert steps[:2] == [["wait", "clipper-migrate"], ["rm", "-f", "clipper-migrate"]]


@pytest.mark.parametrize(
    ("version", "error"),
    [("latest", "'latest' is not a migration version"), ("-2", "a version is >= 0 (or -1")],
)
def test_migrate_force_takes_only_a_migration_version(
    capsys: pytest.CaptureFixture[str], version: str, error: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        release_cli.main(["migrate-force", version])
    assert stopped.value.code == 2 and error in capsys.readouterr().err


# ------------------------------------------------------------------------------ deploy.json


def test_the_rendered_deploy_config_is_what_the_script_reads(config: Any) -> None:
    assert config.images["migrate"].startswith("migrate/migrate:v4.17.0@sha256:")
    assert config.container("green", "backend") == "clipper-green-backend"
    assert config.nginx_test == ["nginx", "-t", "-q"]
    assert str(config.backend_env_file) == "/etc/clipper/backend.env"


def test_an_unknown_schema_is_refused_before_anything_runs() -> None:
    doc = json.loads(render_deploy_config(settings_for("staging")))
    doc["schema"] = 2
    with pytest.raises(errors.ConfigError, match="schema 2"):
        release_config.parse_config(doc, Path("deploy.json"))


def test_a_missing_key_is_named() -> None:
    doc = json.loads(render_deploy_config(settings_for("staging")))
    del doc["paths"]["state_dir"]
    with pytest.raises(errors.ConfigError, match="'state_dir'"):
        release_config.parse_config(doc, Path("deploy.json"))


def test_the_lock_holder_is_described_with_who_what_and_since_when() -> None:
    text = lock.describe_holder(
        {
            "user": "alice",
            "pid": 4242,
            "host": "app-1",
            "command": "clipper-release deploy",
            "started_at": "2026-03-01T10:00:00Z",
        }
    )
    for part in ("alice", "4242", "app-1", "clipper-release deploy", "2026-03-01T10:00:00Z"):
        assert part in text
