"""The ways a release could take the site down, each on the real Docker engine, nginx,
PostgreSQL 17 and Valkey 8 (issue 10's scenarios): every test starts from release v1 live on the
shared app host and, where traffic matters, keeps load on the site through nginx.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.load import LoadGenerator, LoadResult
from tests.support.release_host import AppHost, hold_host_lock

pytestmark = pytest.mark.slow


def short_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def colour_of(host: AppHost) -> str:
    port = host.served_version()["port"]
    return next(color for color, p in host.backend_ports.items() if p == port)


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def running(host: AppHost) -> dict[str, str]:
    return {name: state for name, state in host.containers().items() if state == "running"}


def only_colour_running(host: AppHost, color: str) -> dict[str, str]:
    prefix = f"clipper-t{host.token}"
    return {f"{prefix}-{color}-backend": "running", f"{prefix}-{color}-frontend": "running"}


def restart_policy(host: AppHost, name: str) -> str:
    return host.engine.run(
        ["inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", name]
    ).stdout.strip()


def nginx_command(host: AppHost, *args: str) -> list[str]:
    prefix = host.root / "nginx"
    return [
        "nginx", "-p", f"{prefix}/", "-e", str(prefix / "error.log"),
        "-c", str(prefix / "nginx.conf"), *args,
    ]  # fmt: skip


def release_under_load(
    host: AppHost, *args: str
) -> tuple[subprocess.CompletedProcess[str], LoadResult]:
    """Run clipper-release with load on the site through nginx before, during and after."""
    with host.load() as load:
        assert load.wait_for_requests(20), load.result.summary()
        proc = host.release(*args)
        assert load.wait_for_requests(20), load.result.summary()
    return proc, load.result


def reject_include_of(host: AppHost, color: str) -> list[str]:
    """An `nginx -t` that fails while the include points at `color` (a config nginx rejects)."""
    check = " ".join(nginx_command(host, "-t", "-q"))
    return ["sh", "-c", f"! grep -q 'Active colour: {color}' {host.include} && {check}"]


# ---------------------------------------------------------------------------- 1. the lock


def reading_lock_held(host: AppHost) -> bool:
    """Whether a transaction holds its read lock on `clips` right now."""
    return "clips" in host.psql(
        "SELECT string_agg(relation::regclass::text, ',') FROM pg_locks"
        " WHERE relation = 'clips'::regclass AND mode = 'AccessShareLock' AND granted"
    )


@contextmanager
def open_transaction_reading_clips(host: AppHost, hold_seconds: float) -> Iterator[None]:
    """What pg_dump does for the whole nightly backup: a transaction that has read `clips`
    (an ACCESS SHARE lock until it ends). Ended after `hold_seconds` at the latest."""
    env = {**os.environ, "PGPASSWORD": host.postgres.admin_password}
    psql = subprocess.Popen(
        ["psql", "-X", "-q", "-h", host.postgres.host, "-p", str(host.postgres.port),
         "-U", host.postgres.admin_user, "-d", host.db_name],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, text=True,
    )  # fmt: skip
    assert psql.stdin is not None
    psql.stdin.write("BEGIN; SELECT count(*) FROM clips;\n")
    psql.stdin.flush()
    ender = threading.Timer(hold_seconds, lambda: psql.stdin and psql.stdin.close())
    ender.start()
    try:
        deadline = time.monotonic() + 10
        while not reading_lock_held(host):
            assert time.monotonic() < deadline, "the reading transaction never took its lock"
            time.sleep(0.1)
        yield
    finally:
        ender.cancel()
        if psql.stdin and not psql.stdin.closed:
            psql.stdin.close()
        psql.wait(timeout=10)


def test_a_migration_waiting_for_a_lock_gives_up_and_the_site_keeps_reading_the_table(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "alter")
    schema_before = host.psql("SELECT version, dirty FROM schema_migrations").strip()
    reads = LoadGenerator([host.url("/api/v1/clips")], threads=3, max_seconds=120, timeout=10)
    # The reader holds on far longer than the deploy's lock timeouts and retries add up to, and
    # lets go when the block ends: the deploy must give up while it still holds on.
    with open_transaction_reading_clips(host, hold_seconds=90), reads:
        assert reads.wait_for_requests(20), reads.result.summary()
        started = time.monotonic()
        proc = host.release("deploy", timeout=120)
        took = time.monotonic() - started
        gave_up_behind_the_reader = reading_lock_held(host)
        assert reads.wait_for_requests(20)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lock timeout" in proc.stderr and "waited more than 1s" in proc.stderr
    assert "migrate-force" not in proc.stderr, "nothing to repair: the transaction rolled back"
    assert gave_up_behind_the_reader, f"the deploy outwaited the reader ({took:.0f}s)"
    # The site's reads of clips never queued behind the ALTER TABLE (they would time out).
    assert reads.result.failed == 0, reads.result.summary()
    assert reads.result.percentile_ms(100) < 4000, reads.result.summary()
    assert host.served_version()["version"] == "v1"
    # golang-migrate's dirty mark was cleared back: the next deploy needs no migrate-force.
    assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == schema_before
    again = host.release("deploy")
    assert again.returncode == 0, again.stdout + again.stderr
    assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == "3|f"


def test_a_deploy_refuses_while_a_backup_holds_the_host_lock_and_says_which(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    before = running(host)
    host.use_images("v2", "v2", "v2")
    holder = {"pid": os.getpid(), "command": "clipper-backup backup", "host": "app-1",
              "user": "root", "started_at": "2026-12-02T03:15:00Z"}  # fmt: skip
    with hold_host_lock(host.root / "state", holder):
        proc = host.release("deploy")
    assert proc.returncode == 75, proc.stdout + proc.stderr
    assert "another backup is running on app-1: 'clipper-backup backup'" in proc.stderr
    assert "refused, nothing changed" in proc.stderr
    assert running(host) == before and host.served_version()["version"] == "v1"


# ------------------------------------------------- 2. the old colour stops only after traffic moved


def test_a_backend_that_fails_right_after_its_first_ready_answer_never_gets_traffic(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    active = colour_of(host)
    host.use_images("ready-once", "v2", "v1")
    proc, result = release_under_load(host, "deploy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"the {other(active)} colour" in proc.stderr
    assert "answered ready, then failed" in proc.stderr
    assert "stand-in built to fail after one ready answer" in proc.stderr
    assert result.failed == 0, result.summary() + host.nginx_errors()
    assert running(host) == only_colour_running(host, active)
    assert host.containers() == only_colour_running(host, active), "the failed one is removed"


def test_an_nginx_reload_that_changes_nothing_is_caught_and_the_old_colour_keeps_serving(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    active = colour_of(host)
    nginx = {"test_command": nginx_command(host, "-t", "-q"), "reload_command": ["true"]}
    host.write_config(nginx=nginx)
    host.use_images("v2", "v2", "v2")
    proc, result = release_under_load(host, "deploy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"nginx reloaded but still does not serve the {other(active)} colour" in proc.stderr
    assert f"nginx points at {active} again" in proc.stderr
    assert result.failed == 0, result.summary() + host.nginx_errors()
    assert set(result.versions) == {"v1"}
    assert host.containers() == only_colour_running(host, active)
    assert f"Active colour: {active}" in host.include.read_text()


# ------------------------------------------------------- 3. exactly one colour after a failure


def test_a_frontend_that_cannot_start_leaves_only_the_serving_colour(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    active = colour_of(host)
    host.use_images("v2", "v2", "v2")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", host.frontend_ports[other(active)]))  # type: ignore[index]
    squatter.listen()
    try:
        proc, result = release_under_load(host, "deploy")
    finally:
        squatter.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"docker run clipper-t{host.token}-{other(active)}-frontend failed" in proc.stderr
    assert "the half-started" in proc.stderr and f"{active} keeps serving" in proc.stderr
    assert result.failed == 0, result.summary()
    assert host.containers() == only_colour_running(host, active)


def test_nginx_rejecting_the_switch_leaves_only_the_serving_colour_which_alone_survives_reboot(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    active = colour_of(host)
    reload = nginx_command(host, "-s", "reload")
    host.write_config(nginx={"test_command": reject_include_of(host, other(active)),
                             "reload_command": reload})  # fmt: skip
    host.use_images("v2", "v2", "v2")
    proc, result = release_under_load(host, "deploy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"nginx rejected the config with the {other(active)} include" in proc.stderr
    assert result.failed == 0, result.summary()
    assert host.containers() == only_colour_running(host, active)
    for role in ("backend", "frontend"):
        assert restart_policy(host, f"clipper-t{host.token}-{active}-{role}") == "unless-stopped"


def test_a_served_colour_restarts_after_a_reboot_and_a_retired_one_does_not(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    old = colour_of(host)
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    new = other(old)
    for role in ("backend", "frontend"):
        assert restart_policy(host, f"clipper-t{host.token}-{new}-{role}") == "unless-stopped"
        assert restart_policy(host, f"clipper-t{host.token}-{old}-{role}") == "no"


def test_a_rollback_that_nginx_rejects_leaves_only_the_serving_colour(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    active = colour_of(host)
    reload = nginx_command(host, "-s", "reload")
    host.write_config(nginx={"test_command": reject_include_of(host, other(active)),
                             "reload_command": reload})  # fmt: skip
    proc = host.release("rollback")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert running(host) == only_colour_running(host, active)
    assert host.served_version()["version"] == "v2"
    assert f"{other(active)} was stopped again (kept for rollback)" in proc.stderr


# ------------------------------------------------------------ 6. rollback after a rotation


def test_a_rollback_after_a_secret_rotation_serves_the_current_secret(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    rotated = "rotated-twitch-secret-after-a-leak"
    host.write_backend_env({**host.env, "TWITCH_CLIENT_SECRET": rotated})
    deployed = host.release("deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert host.served_version()["env_sha256"]["TWITCH_CLIENT_SECRET"] == short_sha(rotated)
    proc, result = release_under_load(host, "rollback")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "carry an older env file (a secret was rotated since)" in proc.stdout
    assert result.failed == 0, result.summary()
    served: dict[str, Any] = host.served_version()
    assert served["env_sha256"]["TWITCH_CLIENT_SECRET"] == short_sha(rotated), (
        "the rollback brought the revoked secret back"
    )
    stale = [n for n in host.containers() if n.endswith("-backend")]
    for name in stale:
        inspect = host.engine.run(["inspect", "--format", "{{json .Config.Env}}", name]).stdout
        assert "TWITCH_CLIENT_SECRET=tw " not in inspect, f"{name} still holds the old secret"


# ----------------------------------------------------- 5. a failed rollback --to does not stick


def test_a_failed_rollback_to_a_named_release_does_not_poison_the_next_rollback(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    first = host.status()["active_release"]
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    middle = host.status()["active_release"]
    host.write_backend_env({**host.env, "TWITCH_CLIENT_SECRET": "rotated-for-a-third-release"})
    assert host.release("deploy").returncode == 0
    active = colour_of(host)
    baseline_nginx = dict(host.config["nginx"])
    host.write_config(
        nginx={**baseline_nginx, "test_command": reject_include_of(host, other(active))}
    )
    failed = host.release("rollback", "--to", first)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "was not recorded as pending" in failed.stderr
    assert "the next plain rollback goes one release back" in failed.stderr
    host.write_config(nginx=baseline_nginx)
    proc = host.release("rollback")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert host.status()["active_release"] == middle, "one step back, not to the failed --to"


# -------------------------------------------------------- 8. migration messages tell the truth


def test_a_wrong_database_password_is_reported_as_a_login_failure_not_a_repair(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.write_backend_env({**host.env, "DB_PASSWORD": "not-the-password"})
    host.use_images("v2", "v2", "v2")
    proc = host.release("deploy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "password authentication failed" in proc.stderr
    assert "could not log in" in proc.stderr
    assert "migrate-force" not in proc.stderr
    assert host.served_version()["version"] == "v1"


def test_migrate_force_refuses_a_schema_that_is_not_dirty(app_host_on_v1: AppHost) -> None:
    host = app_host_on_v1
    before = host.psql("SELECT version, dirty FROM schema_migrations").strip()
    proc = host.release("migrate-force", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the schema is not dirty" in proc.stderr and "Nothing was changed" in proc.stderr
    assert host.psql("SELECT version, dirty FROM schema_migrations").strip() == before


# ---------------------------------------------------------------- 9. bad state files


def test_a_release_record_of_the_wrong_shape_stops_with_its_name_and_the_site_keeps_serving(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    record = host.root / "state" / "releases.json"
    good = record.read_text()
    record.write_text(json.dumps({"releases": {"v1": "not a list"}, "active": "v1"}))
    try:
        host.use_images("v2", "v2", "v2")
        proc = host.release("deploy")
    finally:
        record.write_text(good)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{record}: 'releases' must be a list" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert host.served_version()["version"] == "v1"


def test_a_truncated_deploy_config_stops_with_its_name(app_host_on_v1: AppHost) -> None:
    host = app_host_on_v1
    text = host.config_path.read_text()
    host.config_path.write_text(text[: len(text) // 2])
    proc = host.release("deploy")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"cannot read {host.config_path}" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert host.served_version()["version"] == "v1"


# ------------------------------------------------------------------ the release metrics


def _gauges(host: AppHost) -> dict[str, str]:
    lines = host.metrics_file.read_text().splitlines()
    return dict(line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))


def test_the_release_metrics_name_the_serving_release_after_every_attempt(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    status = host.status()
    serving = next(r for r in status["releases"] if r["id"] == status["active_release"])
    gauges = _gauges(host)
    info = (
        f'clipper_release_info{{release="{serving["id"]}",color="{status["active_color"]}",'
        f'backend_image="{serving["images"]["backend"]}",'
        f'frontend_image="{serving["images"]["frontend"]}"}}'
    )
    assert gauges[info] == "1"
    assert gauges["clipper_release_last_attempt_success"] == "1"
    changed = float(gauges["clipper_release_last_change_timestamp_seconds"])
    assert time.time() - 120 < changed <= time.time()

    host.write_config(ready_timeout_seconds=3)
    host.use_images("never-ready", "v2", "v2")
    assert host.release("deploy").returncode == 1
    after = _gauges(host)
    assert after[info] == "1", "still the serving release"
    assert after["clipper_release_last_attempt_success"] == "0"
    assert float(after["clipper_release_last_change_timestamp_seconds"]) == changed
    assert float(after["clipper_release_last_attempt_timestamp_seconds"]) >= changed
    assert [n for n in os.listdir(host.metrics_file.parent) if n.startswith(".")] == []


# --------------------------------------------- 4. one slow probe never moves traffic back


def test_one_slow_readiness_answer_after_a_killed_drain_moves_no_traffic_and_rollback_goes_back_one(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    first = host.status()["active_release"]
    host.use_images("v2", "v2", "v2")
    host.write_config(drain_seconds=30)
    deploying = host.spawn("deploy")
    deploying.wait_for_line(r"draining (blue|green)")
    deploying.kill()  # both colours run now; nginx points at the new one
    new = colour_of(host)
    assert len(running(host)) == 4
    slowed = f"clipper-t{host.token}-{new}-backend"
    host.engine.run(["exec", slowed, "touch", "/tmp/slow-ready"])
    host.write_config(drain_seconds=1)
    try:
        proc, result = release_under_load(host, "rollback")
    finally:
        if host.containers().get(slowed) != "running":
            # Retired and kept for rollback: not with a slow flag for the tests after this one.
            host.engine.run(["rm", "-f", slowed, slowed.replace("-backend", "-frontend")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pointing nginx back" not in proc.stdout, "a slow answer moved traffic"
    assert f"to {first}" in proc.stdout, "the record's previous release, one step back"
    assert host.status()["active_release"] == first
    assert host.served_version()["version"] == "v1"
    assert result.failed == 0, result.summary()


# ------------------------------------------- 10. WebSockets and long requests across a deploy


def ws_connect(host: AppHost, party: str) -> socket.socket:
    """A WebSocket client through nginx: the handshake, checked (RFC 6455)."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection(("127.0.0.1", host.port), timeout=30)
    sock.sendall(
        f"GET /api/v1/watch-parties/{party}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"no handshake answer: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    accept = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()  # noqa: S324
    )
    assert b"Sec-WebSocket-Accept: " + accept in head
    return sock


def ws_send(sock: socket.socket, text: str) -> None:
    mask, data = os.urandom(4), text.encode()
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask + masked)


def ws_receive(sock: socket.socket) -> tuple[int, bytes]:
    """One server frame: (opcode, payload); (-1, b"") when the TCP connection just ended."""
    head = sock.recv(2)
    if len(head) < 2:
        return -1, b""
    length = head[1] & 0x7F
    payload = b""
    while len(payload) < length:
        payload += sock.recv(length - len(payload))
    return head[0] & 0x0F, payload


def test_websockets_and_long_requests_get_a_clean_close_when_their_colour_retires(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    socket_before = ws_connect(host, "party-1")
    ws_send(socket_before, "hello")
    assert ws_receive(socket_before) == (0x1, b"hello")
    long_answer: list[Any] = []

    def long_request() -> None:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=40)
        try:
            conn.request("GET", "/api/v1/sleep?ms=20000")
            long_answer.append((conn.getresponse().status, time.monotonic() - started))
        except OSError as exc:
            long_answer.append((repr(exc), time.monotonic() - started))
        finally:
            conn.close()

    waiter = threading.Thread(target=long_request)
    waiter.start()
    time.sleep(0.5)
    host.use_images("v2", "v2", "v2")
    proc = host.release("deploy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    opcode, payload = ws_receive(socket_before)
    assert opcode == 0x8, f"expected a close frame, got {opcode} {payload!r}"
    assert int.from_bytes(payload[:2], "big") == 1001, payload  # going away: reconnect
    socket_before.close()
    waiter.join(timeout=60)
    # Longer than the drain (1 s), the idle wait (5 s) and the backend's own 5 s: nginx answers
    # 502 once the old colour stops, a complete HTTP answer, well before the 20 s it asked for.
    assert long_answer and long_answer[0][0] == 502, long_answer
    assert long_answer[0][1] < 19, long_answer
    socket_after = ws_connect(host, "party-1")  # the client's reconnect lands on v2
    ws_send(socket_after, "again")
    assert ws_receive(socket_after) == (0x1, b"again")
    socket_after.close()
    assert host.served_version()["version"] == "v2"
