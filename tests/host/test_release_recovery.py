"""clipper-release when things go wrong: a deploy killed midway, two deploys at once, and
rollback, on a real Docker engine, nginx, PostgreSQL 17 and Valkey 8 under steady load."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.support.release_host import AppHost

pytestmark = pytest.mark.slow


def active_release(host: AppHost) -> dict[str, object]:
    doc = json.loads((host.root / "state" / "releases.json").read_text())
    return dict(next(r for r in doc["releases"] if r["id"] == doc["active"]))


@pytest.mark.parametrize(
    "kill_after",
    [
        pytest.param(r"waiting up to .* to be ready", id="idle-colour-started"),
        pytest.param(r"switched: ", id="right-after-the-switch"),
        pytest.param(r"draining ", id="while-draining"),
    ],
)
def test_a_deploy_killed_midway_converges_when_run_again_with_no_failed_request(
    app_host_on_v1: AppHost, kill_after: str
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "v2")
    with host.load() as load:
        assert load.wait_for_requests(30)
        first = host.spawn("deploy")
        first.wait_for_line(kill_after)
        first.kill()  # SIGKILL: no cleanup of any kind runs
        assert load.wait_for_requests(40), "the site keeps serving after the kill"
        killed_at = load.snapshot()
        again = host.release("deploy")
        finished = time.monotonic()
        assert load.wait_for_requests(40)
    assert again.returncode == 0, f"{first.output}\n--- re-run ---\n{again.stdout}{again.stderr}"
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert killed_at[1] == 0, "no request failed between the kill and the re-run"
    assert set(load.versions_since(finished)) == {"v2"}
    status = host.status()
    assert status["healthy"] is True
    active = status["active_color"]
    idle = "green" if active == "blue" else "blue"
    assert status["colors"][idle]["containers"]["backend"]["state"].startswith("exited")
    assert active_release(host)["version"] == f"v2-{host.token}"
    ids = [r["id"] for r in status["releases"]]
    assert len(ids) == len(set(ids)), "the release is recorded once"


def test_a_second_deploy_refuses_and_names_the_one_holding_the_lock(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    host.use_images("v2", "v2", "v2")
    first = host.spawn("deploy")
    try:
        first.wait_for_line(r"took the deploy lock")
        second = host.release("deploy")
        during = host.status()
    finally:
        code = first.wait()
    assert second.returncode == 75, second.stdout + second.stderr
    refusal = second.stderr
    assert "another deploy is running" in refusal
    assert f"pid {first.proc.pid}" in refusal and "'clipper-release deploy'" in refusal
    assert " since 20" in refusal and "s ago)" in refusal
    assert during["lock"]["pid"] == first.proc.pid
    assert code == 0, first.output
    assert host.release("status").stdout.rstrip().endswith("deploy lock: free")


def test_rollback_restores_the_previous_version_in_seconds_with_no_failed_request(
    app_host_on_v1: AppHost, record_property: Callable[[str, object], None]
) -> None:
    host = app_host_on_v1
    previous = active_release(host)
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    with host.load() as load:
        assert load.wait_for_requests(30)
        started = time.monotonic()
        rollback = host.spawn("rollback")
        rollback.wait_for_line(r"switched: ")
        switched = time.monotonic() - started
        code = rollback.wait()
        finished = time.monotonic()
        assert load.wait_for_requests(40)
    assert code == 0, rollback.output
    assert "still has" in rollback.output, "instant: the stopped containers are started again"
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert set(load.versions_since(finished)) == {"v1"}
    assert active_release(host)["id"] == previous["id"]
    # Measured here, reported by the benchmark; the must-have is "under 5 s".
    record_property("rollback_switch_seconds", round(switched, 2))
    print(f"rollback: traffic on the previous release after {switched:.2f}s")


def test_a_rollback_killed_after_the_switch_is_finished_not_repeated_by_a_re_run(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    previous = active_release(host)
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    with host.load() as load:
        first = host.spawn("rollback")
        first.wait_for_line(r"switched: ")
        first.kill()
        again = host.release("rollback")
        finished = time.monotonic()
        assert load.wait_for_requests(40)
    assert again.returncode == 0, first.output + again.stdout + again.stderr
    assert f"finishing an interrupted rollback to {previous['id']}" in again.stdout
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert set(load.versions_since(finished)) == {"v1"}
    assert active_release(host)["id"] == previous["id"], "one step back, not two"
    status = host.status()
    idle = "green" if status["active_color"] == "blue" else "blue"
    assert status["colors"][idle]["containers"]["backend"]["state"].startswith("exited")
    assert not (host.root / "state" / "rollback.pending").exists()


def test_rollback_without_the_old_containers_recreates_them_from_the_recorded_images(
    app_host_on_v1: AppHost,
) -> None:
    host = app_host_on_v1
    previous = active_release(host)
    host.use_images("v2", "v2", "v2")
    assert host.release("deploy").returncode == 0
    stopped = [n for n, state in host.containers().items() if state == "exited"]
    assert len(stopped) == 2
    host.engine.run(["rm", "-f", *stopped])
    with host.load() as load:
        proc = host.release("rollback")
        finished = time.monotonic()
        assert load.wait_for_requests(40)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "recreating them from its images" in proc.stdout
    assert "migrations are not rolled back" in proc.stdout
    assert load.result.failed == 0, load.result.summary() + host.nginx_errors()
    assert set(load.versions_since(finished)) == {"v1"}
    assert active_release(host)["id"] == previous["id"]


def test_rollback_with_nothing_before_says_so(app_host_on_v1: AppHost) -> None:
    host = app_host_on_v1
    releases = host.status()["releases"]
    proc = host.release("rollback", "--to", "no-such-release")
    assert proc.returncode == 1
    assert "no release 'no-such-release'" in proc.stderr
    assert all(r["id"] in proc.stderr for r in releases)
