"""deploy.json: the host script's whole view of a release, rendered from settings."""

from __future__ import annotations

import json

import pytest

from components.host import layout as host_layout
from components.offline.runner import placeholder_secret
from components.renderers.deploy_config import HostTarget, deploy_config, render_deploy_config
from components.renderers.nginx_upstreams import render_active_upstreams
from components.settings import DATABASE_EXTENSIONS, SECRET_KEYS
from tests.support.program import settings_for


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_deploy_config_ships_the_stacks_images(stack: str) -> None:
    settings = settings_for(stack)
    config = json.loads(render_deploy_config(settings))
    assert config["images"] == {
        "backend": settings.image_backend,
        "frontend": settings.image_frontend,
        "migrations": settings.image_migrations,
        "migrate": settings.image_migrate,
    }
    assert "@sha256:" in config["images"]["migrate"]


def test_each_colour_carries_the_exact_nginx_include_that_points_at_it() -> None:
    config = deploy_config(settings_for("staging"))
    for color in host_layout.COLORS:
        assert config["colors"][color]["upstreams"] == render_active_upstreams(color)
        assert config["colors"][color]["backend_port"] == host_layout.BACKEND_PORTS[color]
        assert config["colors"][color]["frontend_port"] == host_layout.FRONTEND_PORTS[color]


def test_paths_follow_the_host_layout_contract() -> None:
    config = deploy_config(settings_for("production"))
    assert config["paths"] == {
        "backend_env_file": host_layout.BACKEND_ENV_FILE,
        "db_admin_env_file": host_layout.DB_ADMIN_ENV_FILE,
        "state_dir": host_layout.STATE_DIR,
        "nginx_include": host_layout.NGINX_ACTIVE_UPSTREAMS_FILE,
    }
    assert config["nginx"] == {
        "test_command": ["nginx", "-t", "-q"],
        "reload_command": ["nginx", "-s", "reload"],
    }


def test_release_timings_come_from_settings() -> None:
    settings = settings_for(
        "staging", releaseDrainSeconds="7", releaseReadyTimeoutSeconds="33", releaseKeep="5"
    )
    config = deploy_config(settings)
    assert config["drain_seconds"] == 7
    assert config["ready_timeout_seconds"] == 33
    assert config["release_keep"] == 5
    # docker stop must outlast the backend's own 5 s drain on SIGTERM.
    assert config["stop_timeout_seconds"] > 5


def test_extensions_are_the_ones_the_apps_migrations_need() -> None:
    assert deploy_config(settings_for("staging"))["database_extensions"] == list(
        DATABASE_EXTENSIONS
    )


def test_the_backend_shares_the_host_network_to_reach_the_valkey_tunnel() -> None:
    containers = deploy_config(settings_for("staging"))["containers"]
    args = containers["backend_run_args"]
    assert args[args.index("--network") + 1] == "host"
    assert containers["port_env"] == "PORT"
    assert "--network" not in containers["frontend_run_args"]
    assert containers["frontend_container_port"] == 80


def test_a_test_host_moves_ports_and_paths_but_keeps_the_include_shape() -> None:
    target = HostTarget(
        backend_ports={"blue": 18081, "green": 18082},
        frontend_ports={"blue": 13001, "green": 13002},
        state_dir="/tmp/x/state",
        container_prefix="clipper-t1",
    )
    config = deploy_config(settings_for("staging"), target)
    green = config["colors"]["green"]["upstreams"]
    assert "server 127.0.0.1:18082 " in green and "server 127.0.0.1:13002 " in green
    assert "8082" not in green.replace("18082", "")
    assert green.replace("18082", "8082").replace("13002", "3002") == render_active_upstreams(
        "green"
    )
    assert config["paths"]["state_dir"] == "/tmp/x/state"
    assert config["containers"]["prefix"] == "clipper-t1"


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_deploy_config_holds_no_secret(stack: str) -> None:
    text = render_deploy_config(settings_for(stack))
    for key in SECRET_KEYS:
        assert placeholder_secret(key) not in text
    for word in ("PASSWORD", "SECRET", "PRIVATE KEY", "MFA_ENCRYPTION_KEY"):
        assert word not in text.upper()


def test_rendering_is_stable() -> None:
    settings = settings_for("production")
    assert render_deploy_config(settings) == render_deploy_config(settings)
    assert render_deploy_config(settings).endswith("}\n")


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_backend_health_check_probes_the_colours_port_inside_the_container() -> None:
    args = deploy_config(settings_for("staging"))["containers"]["backend_run_args"]
    command = _flag(args, "--health-cmd")
    # ${PORT} stays literal on the host: docker runs it with /bin/sh -c in the container,
    # where clipper-release sets PORT to the colour's port (not the image's fixed :8080).
    assert "${PORT}" in command and "8080" not in command
    assert "/health/ready" in command
    assert {_flag(args, "--health-interval"), _flag(args, "--health-retries")} == {"10s", "3"}


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_health_command_passes_only_when_the_ready_probe_on_port_answers_200(
    status: int, healthy: bool
) -> None:
    """The rendered command run by a real shell and wget against a server on a free port."""
    import http.server
    import subprocess
    import threading

    seen: list[str] = []

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        args = deploy_config(settings_for("staging"))["containers"]["backend_run_args"]
        proc = subprocess.run(
            ["sh", "-c", _flag(args, "--health-cmd")],
            env={"PATH": "/usr/bin:/bin", "PORT": str(server.server_port)},
            capture_output=True,
            timeout=30,
            check=False,
        )
    finally:
        server.shutdown()
    assert (proc.returncode == 0) is healthy
    assert seen == ["/health/ready"]


def test_every_colour_mounts_the_same_exports_dir_as_export_dir() -> None:
    args = deploy_config(settings_for("production"))["containers"]["backend_run_args"]
    assert _flag(args, "--volume") == "/var/lib/clipper/exports:/var/lib/clipper/exports"
    assert _flag(args, "-e") == "EXPORT_DIR=/var/lib/clipper/exports"
    moved = deploy_config(settings_for("production"), HostTarget(exports_dir="/tmp/t/exports"))
    assert _flag(moved["containers"]["backend_run_args"], "--volume").startswith("/tmp/t/exports:")


def test_resolved_images_replace_the_settings_references() -> None:
    pinned = {k: f"r/{k}:v1@sha256:{'0' * 64}" for k in ("backend", "frontend", "migrations")}
    pinned["migrate"] = f"m/m:v4@sha256:{'1' * 64}"
    assert deploy_config(settings_for("staging"), images=pinned)["images"] == pinned


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_release_checks_through_nginx_which_backend_really_serves(stack: str) -> None:
    config = deploy_config(settings_for(stack))
    assert config["verify"] == {
        "url": f"http://127.0.0.1:{host_layout.NGINX_VERIFY_PORT}{host_layout.NGINX_VERIFY_PATH}",
        "answers": 5,
        "upstream_header": host_layout.VERIFY_UPSTREAM_HEADER,
    }
    # Each colour's include carries the loopback listener that names the upstream it used.
    for color in ("blue", "green"):
        include = config["colors"][color]["upstreams"]
        assert f"listen 127.0.0.1:{host_layout.NGINX_VERIFY_PORT};" in include
        assert f"add_header {host_layout.VERIFY_UPSTREAM_HEADER} $upstream_addr always;" in include


def test_a_test_host_moves_the_verify_listener_with_its_port() -> None:
    config = deploy_config(settings_for("staging"), HostTarget(nginx_verify_port=18099))
    assert config["verify"]["url"].startswith("http://127.0.0.1:18099/")
    assert "listen 127.0.0.1:18099;" in config["colors"]["green"]["upstreams"]
