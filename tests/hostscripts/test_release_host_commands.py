"""Every process the host package starts, as data: each builder in hostscripts/clipper/commands
returns the exact argv asserted here (Kamal's test/commands/*_test.rb). No process runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clipper.commands import colors, docker, nginx, postgres, rclone
from clipper.release_config import Config, parse_config

from components.renderers.deploy_config import HostTarget, render_deploy_config
from tests.support.program import settings_for

REGISTRY_DOCKER = ("docker", "--config", "/etc/clipper/registry")
RELEASE: dict[str, Any] = {
    "id": "v1.4.0-0123abcd",
    "version": "v1.4.0",
    "fingerprint": "f" * 64,
    "images": {
        "backend": "ghcr.io/org/backend@sha256:" + "b" * 64,
        "frontend": "ghcr.io/org/frontend@sha256:" + "c" * 64,
    },
}


def _config(**target: Any) -> Config:
    text = render_deploy_config(settings_for("staging"), HostTarget(**target))
    return parse_config(json.loads(text), Path("/etc/clipper/deploy.json"))


CONFIG = _config(docker_command=REGISTRY_DOCKER)
LABELS = [
    "--label", "org.clipper.release=v1.4.0-0123abcd",
    "--label", f"org.clipper.fingerprint={'f' * 64}",
    "--label", "org.clipper.color=green",
    "--label", "org.clipper.version=v1.4.0",
]  # fmt: skip
LOGS = ["--log-opt", "max-size=10m", "--log-opt", "max-file=3"]
D = list(REGISTRY_DOCKER)

# (name, builder call, exact argv). One row per command the host package can run.
CASES: list[tuple[str, Callable[[], list[str]], list[str]]] = [
    (
        "the backend of a colour",
        lambda: colors.run_backend(CONFIG, "green", RELEASE, ["DB_PASSWORD", "PORT"]),
        [
            *D, "run", "-d", "--name", "clipper-green-backend",
            *LABELS, "--label", "org.clipper.role=backend",
            "--stop-timeout", "15", "--network", "host", *LOGS,
            # The health check probes the colour's own port (the image's probes :8080).
            "--health-cmd",
            'wget -q -O /dev/null "http://127.0.0.1:${PORT}/health/ready" || exit 1',
            "--health-interval", "10s", "--health-timeout", "3s", "--health-retries", "3",
            "--health-start-period", "30s",
            # Exports outlive a release.
            "--volume", "/var/lib/clipper/exports:/var/lib/clipper/exports",
            "-e", "EXPORT_DIR=/var/lib/clipper/exports",
            "-e", "DB_PASSWORD", "-e", "PORT", RELEASE["images"]["backend"],
        ],
    ),
    (
        "the frontend of a colour",
        lambda: colors.run_frontend(CONFIG, "green", RELEASE),
        [
            *D, "run", "-d", "--name", "clipper-green-frontend",
            *LABELS, "--label", "org.clipper.role=frontend",
            "--stop-timeout", "15", *LOGS, "-p", "127.0.0.1:3002:80",
            RELEASE["images"]["frontend"],
        ],
    ),
    ("remove a colour", lambda: colors.remove(CONFIG, "blue"),
     [*D, "rm", "-f", "clipper-blue-backend", "clipper-blue-frontend"]),
    ("stop a colour", lambda: colors.stop(CONFIG, "blue"),
     [*D, "stop", "-t", "15", "clipper-blue-backend", "clipper-blue-frontend"]),
    ("keep a serving colour after a reboot", lambda: colors.keep_after_reboot(CONFIG, "green"),
     [*D, "update", "--restart", "unless-stopped", "clipper-green-backend",
      "clipper-green-frontend"]),
    ("a retired colour stays down after a reboot",
     lambda: colors.forget_after_reboot(CONFIG, "blue"),
     [*D, "update", "--restart", "no", "clipper-blue-backend", "clipper-blue-frontend"]),
    ("inspect both colours", lambda: colors.inspect_all(CONFIG),
     [*D, "container", "inspect", "clipper-blue-backend", "clipper-blue-frontend",
      "clipper-green-backend", "clipper-green-frontend"]),
    (
        "golang-migrate's container",
        lambda: colors.migrate_create(
            CONFIG, "migrate/migrate:v4.17.0", "postgres://app@db:25060/clipper?sslmode=require",
            ["up"],
        ),
        [
            *D, "create", "--name", "clipper-migrate", "--network", "host",
            "-e", "PGPASSWORD", "-e", "PGOPTIONS", "migrate/migrate:v4.17.0",
            "-path", "/migrations", "-database",
            "postgres://app@db:25060/clipper?sslmode=require", "up",
        ],
    ),
    ("the migrations image, never started",
     lambda: colors.migrations_copy_create(CONFIG, "ghcr.io/org/migrations:v1"),
     [*D, "create", "--name", "clipper-migrations-copy", "ghcr.io/org/migrations:v1",
      "migrations-copy"]),
    ("copy files into a container", lambda: docker.copy(D, "/var/lib/m/.", "c:/migrations"),
     [*D, "cp", "/var/lib/m/.", "c:/migrations"]),
    ("start attached", lambda: docker.start_attached(D, "clipper-migrate"),
     [*D, "start", "--attach", "clipper-migrate"]),
    ("start", lambda: docker.start(D, "a", "b"), [*D, "start", "a", "b"]),
    ("wait", lambda: docker.wait(D, "clipper-migrate"), [*D, "wait", "clipper-migrate"]),
    ("remove, leaving a running one alone", lambda: docker.remove(D, "x"), [*D, "rm", "x"]),
    ("is an image here", lambda: docker.image_id(D, "img:1"),
     [*D, "image", "inspect", "--format", "{{.Id}}", "img:1"]),
    ("pull with the registry credential", lambda: docker.pull(D, "img:1"),
     [*D, "pull", "--quiet", "img:1"]),
    ("remove an image", lambda: docker.remove_image(D, "img:1"), [*D, "image", "rm", "img:1"]),
    ("the last log lines", lambda: docker.logs_tail(D, "x", 20), [*D, "logs", "--tail", "20", "x"]),
    ("nginx -t as deploy.json says", lambda: nginx.config_test(CONFIG.nginx_test),
     ["nginx", "-t", "-q"]),
    ("nginx reload as deploy.json says", lambda: nginx.reload(CONFIG.nginx_reload),
     ["nginx", "-s", "reload"]),
    ("psql reading the admin's SQL on stdin", lambda: postgres.psql_script(CONFIG.psql),
     ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]),
    ("psql: one query", lambda: postgres.psql_query("/usr/bin/psql", "SELECT 1"),
     ["/usr/bin/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1"]),
    ("a tool's version", lambda: postgres.tool_version("pg_dump"), ["pg_dump", "--version"]),
    ("pg_dump", lambda: postgres.dump("pg_dump", Path("/w/db.dump")),
     ["pg_dump", "--format=custom", "--compress=6", "--file=/w/db.dump"]),
    ("pg_restore --list", lambda: postgres.archive_list("pg_restore", Path("/w/db.dump")),
     ["pg_restore", "--list", "/w/db.dump"]),
    (
        "pg_restore all or nothing",
        lambda: postgres.restore("pg_restore", Path("/w/db.dump"), "clipper_x", whole=True),
        ["pg_restore", "--no-owner", "--exit-on-error", "--dbname=clipper_x",
         "--clean", "--if-exists", "--single-transaction", "/w/db.dump"],
    ),
    (
        "pg_restore as the app's role, from a list",
        lambda: postgres.restore("pg_restore", Path("/w/db.dump"), "clipper_x", whole=True,
                                 role="clipper", use_list=Path("/w/rest.list")),
        ["pg_restore", "--no-owner", "--exit-on-error", "--dbname=clipper_x",
         "--clean", "--if-exists", "--single-transaction", "--role=clipper",
         "--use-list=/w/rest.list", "/w/db.dump"],
    ),
    (
        "pg_restore of the extensions only",
        lambda: postgres.restore("pg_restore", Path("/w/db.dump"), "clipper_x", whole=False,
                                 use_list=Path("/w/ext.list")),
        ["pg_restore", "--no-owner", "--exit-on-error", "--dbname=clipper_x",
         "--use-list=/w/ext.list", "/w/db.dump"],
    ),
    ("upload", lambda: rclone.copy_to("/w/db.dump", rclone.remote_path("b", "k.dump")),
     ["rclone", "--retries", "3", "--low-level-retries", "5", "copyto", "/w/db.dump",
      "spaces:b/k.dump"]),
    ("stat an object", lambda: rclone.stat("spaces:b/k"),
     ["rclone", "--retries", "3", "--low-level-retries", "5", "lsjson", "--stat", "spaces:b/k"]),
    ("list a prefix", lambda: rclone.list_files("spaces:b/p"),
     ["rclone", "--retries", "3", "--low-level-retries", "5", "lsjson", "-R", "--files-only",
      "spaces:b/p"]),
    ("delete an object", lambda: rclone.delete("spaces:b/k"),
     ["rclone", "--retries", "3", "--low-level-retries", "5", "deletefile", "spaces:b/k"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "argv"), CASES, ids=[c[0] for c in CASES])
def test_each_host_command_is_exactly_this_argv(
    name: str, build: Callable[[], list[str]], argv: list[str]
) -> None:
    assert build() == argv


def test_every_builder_of_the_commands_package_has_a_row() -> None:
    modules = (colors, docker, nginx, postgres, rclone)
    helpers = {"label_args", "env_name_args", "run_detached", "remote_path", "labels", "names",
               "backend_env_names", "backend_environment", "remove_force", "stop",
               "set_restart_policy", "inspect_containers", "create"}  # fmt: skip
    public = {
        f"{m.__name__.rsplit('.', 1)[1]}.{name}"
        for m in modules
        for name, value in vars(m).items()
        if callable(value)
        and getattr(value, "__module__", "") == m.__name__
        and not name.startswith("_")
        and name not in helpers
    }
    source = Path(__file__).read_text()
    missing = sorted(name for name in public if f"{name}(" not in source)
    assert not missing, f"builders without an argv row: {missing}"


def test_the_backend_gets_secrets_by_name_only_and_its_port_from_its_colour() -> None:
    env = {"DB_PASSWORD": "hunter2-secret", "REDIS_PASSWORD": "r-secret"}
    names = colors.backend_env_names(CONFIG, env)
    argv = colors.run_backend(CONFIG, "blue", RELEASE, names)
    assert names == ["DB_PASSWORD", "PORT", "REDIS_PASSWORD"]
    assert "hunter2-secret" not in " ".join(argv) and "r-secret" not in " ".join(argv)
    assert colors.backend_environment(CONFIG, "blue", env)["PORT"] == "8081"
    # No restart policy at `docker run`: it is set only once the colour serves.
    assert "--restart" not in argv


def test_the_registry_prefix_from_deploy_json_starts_every_docker_call() -> None:
    plain = _config(docker_command=("docker",))
    assert colors.run_frontend(plain, "blue", RELEASE)[:2] == ["docker", "run"]
    assert colors.run_frontend(CONFIG, "blue", RELEASE)[:4] == [*REGISTRY_DOCKER, "run"]
