"""The fleet command over real SSH against two app droplets (tests/support/fleet_hosts.py).

`python -m components ops` runs as an operator runs it: from an outputs file shaped like
`pulumi stack output --json --show-secrets` (its addresses are ssh_config aliases of the two
loopback droplets, their SSH host keys pinned), through the system ssh client, driving the
real `clipper-release` and `clipper-backup` on each host. Both droplets run release v1 then
v2 of the stand-in images on one shared PostgreSQL 17 and Valkey 8, so they record the same ids.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from components.host import layout as host_layout
from tests.support import DockerEngine, PostgresServer, ValkeyServer, wait_until
from tests.support.fleet_hosts import (
    Fleet,
    FleetDroplet,
    SharedServices,
    images_for,
    install_host_package,
    make_workdir,
    start_droplet,
    write_access_files,
)
from tests.support.imitation_host import CLOUD_INIT_SHIM, HOST_SETUP
from tests.support.load import LoadGenerator
from tests.support.release_host import ReleaseImages

pytestmark = [pytest.mark.host, pytest.mark.slow]


@pytest.fixture(scope="module")
def fleet(
    docker_engine: DockerEngine,
    app_host_image: str,
    postgres_server: PostgresServer,
    valkey_server: ValkeyServer,
    release_images: ReleaseImages,
) -> Iterator[Fleet]:
    token = f"{int(time.time()) % 100000}"
    workdir = make_workdir()
    key = workdir / "deploy_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    shared = SharedServices.create(postgres_server, valkey_server, token)
    env = shared.backend_env()  # one env for both, as the stack writes one file
    droplets: list[FleetDroplet] = []
    try:
        for n in (1, 2):
            droplet = start_droplet(
                docker_engine, app_host_image, name=f"app-{n}", token=token,
                public_key=(workdir / "deploy_key.pub").read_text().strip(),
                host_setup=HOST_SETUP, cloud_init_shim=CLOUD_INIT_SHIM,
            )  # fmt: skip
            droplets.append(droplet)
            install_host_package(droplet, backups=n == 1)
            droplet.write_env(shared.admin_env(), host_layout.DB_ADMIN_ENV_FILE)
            droplet.write_env(env)
            droplet.write_config(
                images=images_for(release_images, "v1", release_images.migrate),
                ready_timeout_seconds=20, drain_seconds=1, release_keep=2,
            )  # fmt: skip
        shipped = images_for(release_images, "v2", release_images.migrate)
        fleet = write_access_files(droplets, key.read_text(), workdir, env, shipped)
        for release in ("v1", "v2"):
            for droplet in droplets:
                droplet.write_config(
                    images=images_for(release_images, release, release_images.migrate)
                )
                proc = droplet.release("deploy")
                assert proc.returncode == 0, f"{droplet.name}: {proc.stdout}\n{proc.stderr}"
        yield fleet
    finally:
        for droplet in droplets:
            prefix = droplet.config.get("containers", {}).get("prefix", "-")
            ids = docker_engine.run(
                ["ps", "-aq", "--filter", f"name=^{prefix}-"], check=False
            ).stdout.split()
            docker_engine.run(["rm", "-f", droplet.container, *ids], check=False)
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


@pytest.fixture
def fleet_on_v2(fleet: Fleet, release_images: ReleaseImages) -> Fleet:
    """Both hosts serving v2 with v1 kept for rollback (a deploy is a no-op when there)."""
    for droplet in fleet.droplets:
        droplet.write_env(fleet.env)
        droplet.write_config(images=images_for(release_images, "v2", release_images.migrate))
        proc = droplet.release("deploy")
        assert proc.returncode == 0, f"{droplet.name}: {proc.stdout}\n{proc.stderr}"
    return fleet


def _ids(fleet: Fleet) -> dict[str, str]:
    return {d.name: d.status()["active_release"] for d in fleet.droplets}


def _load(fleet: Fleet) -> LoadGenerator:
    paths = ("/api/v1/version", "/health/ready", "/")
    return LoadGenerator([d.url(p) for d in fleet.droplets for p in paths], threads=4)


# ------------------------------------------------------------------------------ the tests


def test_status_shows_both_hosts_on_one_release_in_a_table_and_as_json(fleet_on_v2: Fleet) -> None:
    fleet = fleet_on_v2
    table = fleet.ops("status")
    print(table.stdout)
    assert table.returncode == 0, table.stdout + table.stderr
    header, *rows = table.stdout.splitlines()[:3]
    assert header.split()[:6] == ["HOST", "COLOUR", "RELEASE", "HEALTH", "LOCK", "LAST"]
    v2 = _ids(fleet)["app-1"]
    assert v2.startswith("v2-") and _ids(fleet)["app-2"] == v2
    for name, row in zip(("app-1", "app-2"), rows, strict=True):
        assert row.split()[:5] == [name, row.split()[1], v2, "ok", "free"]
    assert "one release live, all healthy" in table.stdout
    # What the stack shipped (its releaseImages output) is what both hosts serve.
    shipped = fleet.ops("status", "--expect-shipped")
    assert shipped.returncode == 0, shipped.stdout

    doc = json.loads(fleet.ops("status", "--json").stdout)
    assert doc["ok"] and doc["live_releases"] == {v2: ["app-1", "app-2"]}
    one, two = doc["hosts"]
    # The stand-in tags carry a hash of tests/images (tests/support/release_host.py).
    assert one["images"]["backend"].startswith("local/clipper-backend:v2")
    assert one["previous_release"].startswith("v1-") and one["healthy"]
    # app-1 runs the backups; here clipper-backup has no bucket, and says so (not a verdict).
    assert one["last_backup"] is None and "clipper-backup list exited" in one["backup_error"]
    assert two["backup_error"] is None


def test_a_rollback_of_both_hosts_under_load_fails_no_request(fleet_on_v2: Fleet) -> None:
    fleet = fleet_on_v2
    v1 = fleet.droplets[0].status()["releases"][1]["id"]
    with _load(fleet) as load:
        assert load.wait_for_requests(50)
        proc = fleet.ops("rollback")
        time.sleep(1.0)  # nginx's old workers finish; requests keep flowing meanwhile
    result = load.result
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _ids(fleet) == {"app-1": v1, "app-2": v1}
    # Host by host, in order, each host's own lines prefixed by its name.
    out = proc.stdout
    assert out.index("app-1 | ") < out.index("app-2 | ")
    assert f"every host serves {v1}: app-1, app-2" in out
    took = re.search(r"all hosts on it ([0-9.]+)s after the rollback started", out)
    assert took, out
    print(
        f"fleet rollback: all hosts on {v1} {took.group(1)}s after it started; {result.summary()}"
    )
    assert result.failed == 0, result.summary()
    assert result.sent > 100 and result.versions["v1"] > 0 and result.versions["v2"] > 0


def test_a_rollback_that_fails_on_the_second_host_stops_and_says_so(
    fleet_on_v2: Fleet, release_images: ReleaseImages
) -> None:
    fleet = fleet_on_v2
    two = fleet.droplets[1]
    v2 = _ids(fleet)["app-1"]
    # Break app-2's way back: its kept v1 containers are gone (as after a prune) and its env
    # points at a closed Redis port, so the recreated v1 backend cannot start there.
    standby = "blue" if two.status()["active_color"] == "green" else "green"
    prefix = two.config["containers"]["prefix"]
    two.engine.run(["rm", "-f", f"{prefix}-{standby}-backend", f"{prefix}-{standby}-frontend"])
    two.write_env({**fleet.env, "REDIS_PORT": "1"})
    try:
        proc = fleet.ops("rollback")
        print(proc.stdout)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        out = proc.stdout
        assert "app-2: failed: exit 1: clipper-release rollback: the " in out
        assert "colour did not become ready: a container stopped" in out
        assert "stopped at app-2, which failed; moved: app-1; not attempted: none" in out
        assert f"app-2 still serves {v2} (healthy)" in out
        ids = _ids(fleet)
        assert ids["app-1"].startswith("v1-") and ids["app-2"] == v2
        # The fleet now disagrees, and status says so with a non-zero exit.
        status = fleet.ops("status")
        print(status.stdout)
        assert status.returncode == 1
        assert f"PROBLEM: 2 releases are live: {ids['app-1']} on app-1; {v2} on app-2" in (
            status.stdout
        )
        shipped = fleet.ops("status", "--expect-shipped").stdout
        assert "PROBLEM: app-1 serves {'backend': 'local/clipper-backend:v1" in shipped
        assert "app-2 serves" not in shipped
    finally:
        two.write_env(fleet.env)


def test_a_held_lock_is_shown_per_host_and_refuses_a_rollback(fleet_on_v2: Fleet) -> None:
    fleet = fleet_on_v2
    two = fleet.droplets[1]
    # The host script's own lock (flock + holder file), held by a process we start and stop.
    hold = (
        "import pathlib, sys, time\n"
        f"sys.path.insert(0, {host_layout.HOST_PACKAGE_DIR!r})\n"
        "from clipper.lock import host_lock\n"
        "with host_lock(pathlib.Path('/var/lib/clipper'), 'clipper-release deploy'):\n"
        "    print('took the deploy lock', flush=True)\n"
        "    time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        ["docker", "exec", "-i", "-e", "SUDO_USER=ci-deployer", two.container, "python3", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=two.engine.env,
    )  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write(hold)
    holder.stdin.close()
    try:
        assert "took the deploy lock" in holder.stdout.readline()
        lock = fleet.ops("lock")
        print(lock.stdout)
        assert lock.returncode == 0
        rows = dict(line.split(None, 1) for line in lock.stdout.splitlines()[1:])
        assert rows["app-1"].strip() == "free"
        assert rows["app-2"].startswith("clipper-release deploy by ci-deployer (pid ")
        refused = fleet.ops("rollback")
        assert refused.returncode == 75, refused.stdout
        assert "nothing was rolled back: app-2 is locked by clipper-release deploy" in (
            refused.stdout
        )
        assert _ids(fleet)["app-1"].startswith("v2-"), "a refused rollback moves nothing"
    finally:
        held = two.exec("cat", "/var/lib/clipper/host.lock.holder", check=False).stdout
        if held:
            two.exec("kill", str(json.loads(held)["pid"]), check=False)
        holder.wait(timeout=30)


def test_logs_come_from_every_host_prefixed_and_follow_keeps_reading(fleet_on_v2: Fleet) -> None:
    fleet = fleet_on_v2
    proc = fleet.ops("logs", "--source", "backend", "--lines", "5", "--since", "1h")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hosts = {line.split(" | ", 1)[0].strip() for line in proc.stdout.splitlines()}
    assert hosts == {"app-1", "app-2"}

    # --follow keeps reading: nginx's access log on both hosts, lines written after it started.
    follow = subprocess.Popen(
        [*fleet.ops_argv(), "logs", "--source", "nginx", "--lines", "0", "--follow"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert follow.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda out=follow.stdout: lines.extend(out), daemon=True)
    reader.start()
    try:
        time.sleep(3)  # both hosts' `tail -F` are attached
        for droplet in fleet.droplets:
            _get(droplet.url("/health/ready?fleet-follow"))

        def both_hosts_seen() -> bool:
            hosts = {line.split(" | ", 1)[0].strip() for line in lines if "fleet-follow" in line}
            return hosts == {"app-1", "app-2"}

        assert wait_until(both_hosts_seen, timeout=20), lines
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=15) == 0
        reader.join(timeout=5)


def _get(url: str) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback http)
        response.read()
