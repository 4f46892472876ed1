"""The fleet command's decisions and remote commands, as data (components/fleet).

No SSH here: the runner is tested end to end over real SSH in tests/host/test_fleet_over_ssh.py.
Where a rollback needs hosts, `scripted_host` below is a stand-in for SSH: it replays what
`clipper-release rollback` prints, so the sequencing can be checked without two hosts.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from clipper.decisions import rollback_target

from components.fleet import commands
from components.fleet.logs import SinceError, access_line_after, prefixed, since_cutoff
from components.fleet.outputs import (
    Fleet,
    FleetHost,
    OutputsError,
    fleet_from_outputs,
    pulumi_outputs_argv,
    read_outputs,
    select_hosts,
)
from components.fleet.rollback import (
    EXIT_LOCKED,
    RollbackPlan,
    RollbackRefusedError,
    plan_rollback,
    roll_back,
    switch_moment,
)
from components.fleet.ssh import HostRun, Line, SshAccess, known_hosts_text, ssh_access, ssh_argv
from components.fleet.status import (
    HostStatus,
    fleet_problems,
    parse_host_status,
    previous_of,
    status_table,
)
from components.host import layout as host_layout

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAtest\n-----END OPENSSH PRIVATE KEY-----\n"


def outputs(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "fleetHosts": {
            "app": [
                {"name": "app-1", "droplet": "clipper-production-app-1",
                 "publicAddress": "203.0.113.11", "privateAddress": "10.0.0.3", "backups": True},
                {"name": "app-2", "droplet": "clipper-production-app-2",
                 "publicAddress": "203.0.113.12", "privateAddress": "10.0.0.4", "backups": False},
            ],
        },
        "deployPrivateKey": KEY,
        "siteUrl": "https://clipper.example.com",
        "releaseImages": {"backend": "b@sha256:1", "frontend": "f@sha256:2"},
    }  # fmt: skip
    doc.update(changes)
    return doc


# ---------------------------------------------------------------- outputs


def test_hosts_and_key_come_from_the_stack_outputs() -> None:
    fleet = fleet_from_outputs("production", outputs())
    assert [(h.name, h.address, h.backups) for h in fleet.hosts] == [
        ("app-1", "203.0.113.11", True),
        ("app-2", "203.0.113.12", False),
    ]
    assert fleet.private_key == KEY
    assert KEY not in repr(fleet), "the key must not show up in a traceback or a log"


def test_the_cli_reads_every_output_with_secrets_of_the_named_stack() -> None:
    assert pulumi_outputs_argv("staging") == [
        "pulumi", "stack", "output", "--json", "--show-secrets", "-s", "staging",
    ]  # fmt: skip


def test_outputs_without_the_fleet_keys_name_them_and_the_fix() -> None:
    doc = outputs()
    del doc["deployPrivateKey"]
    with pytest.raises(OutputsError, match=r"no output deployPrivateKey: run `pulumi up -s prod"):
        fleet_from_outputs("production", doc)


def test_outputs_read_without_show_secrets_are_refused() -> None:
    with pytest.raises(OutputsError, match="--show-secrets"):
        fleet_from_outputs("production", outputs(deployPrivateKey="[secret]"))


def test_an_unknown_role_or_host_is_named() -> None:
    with pytest.raises(OutputsError, match=r"no hosts of role 'db' \(roles: app\)"):
        fleet_from_outputs("production", outputs(), role="db")
    fleet = fleet_from_outputs("production", outputs())
    with pytest.raises(OutputsError, match="no host app-9"):
        select_hosts(fleet, ["app-9"])
    assert [h.name for h in select_hosts(fleet, ["app-2"])] == ["app-2"]


def test_an_outputs_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "outputs.json"
    bad.write_text("[secret]")
    with pytest.raises(OutputsError, match=f"{bad} is not JSON"):
        read_outputs("staging", bad)


# ---------------------------------------------------------------- ssh


def _host(**changes: Any) -> FleetHost:
    return FleetHost(**{"name": "app-1", "droplet": "d", "address": "203.0.113.11", **changes})


def test_ssh_runs_the_quoted_command_as_deploy_with_only_the_key_file() -> None:
    access = SshAccess(Path("/tmp/k/deploy_key"))
    argv = ssh_argv(access, _host(), ["sudo", "-n", "clipper-release", "rollback", "--to", "a b"])
    assert argv[-2:] == ["deploy@203.0.113.11", "sudo -n clipper-release rollback --to 'a b'"]
    assert argv[argv.index("-i") + 1] == "/tmp/k/deploy_key"
    for option in ("BatchMode=yes", "IdentitiesOnly=yes", "IdentityAgent=none"):
        assert option in argv
    # No pinned key: trust on first use, with the operator's own known_hosts (never ignored).
    assert "StrictHostKeyChecking=accept-new" in argv
    assert not any("UserKnownHostsFile" in a for a in argv)


def test_a_pinned_host_key_is_checked_strictly_by_host_name() -> None:
    host = _host(host_key="ssh-ed25519 AAAAC3Nz")
    access = SshAccess(Path("/k"), known_hosts=Path("/kh"), config_file=Path("/cfg"))
    argv = ssh_argv(access, host, ["true"])
    assert argv[:3] == ["ssh", "-F", "/cfg"]
    assert {"UserKnownHostsFile=/kh", "StrictHostKeyChecking=yes", "HostKeyAlias=app-1"} <= set(
        argv
    )
    assert known_hosts_text([host, _host(name="app-2")]) == "app-1 ssh-ed25519 AAAAC3Nz\n"


def test_the_key_lives_in_a_private_file_only_while_the_command_runs() -> None:
    fleet = Fleet("staging", (_host(host_key="ssh-ed25519 AAAA"),), KEY.rstrip("\n"))
    with ssh_access(fleet) as access:
        key = access.key_file
        assert key.read_text() == KEY  # with the final newline ssh needs
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
        assert access.known_hosts is not None and access.known_hosts.exists()
    assert not key.exists() and not key.parent.exists()


# ---------------------------------------------------------------- remote commands


def test_remote_commands_drive_the_host_scripts_without_prompting() -> None:
    release, backup = host_layout.RELEASE_SCRIPT, host_layout.BACKUP_SCRIPT
    assert commands.release_status() == ["sudo", "-n", release, "status", "--json"]
    assert commands.release_rollback(None) == ["sudo", "-n", release, "rollback"]
    assert commands.release_rollback("v1-ab") == [
        "sudo",
        "-n",
        release,
        "rollback",
        "--to",
        "v1-ab",
    ]
    assert commands.backup_list() == ["sudo", "-n", backup, "list", "--json"]


def test_log_commands_pass_since_and_follow_to_docker_and_tail() -> None:
    assert commands.container_logs("clipper-blue-backend", "10m", 50, follow=True) == [
        "sudo", "-n", "docker", "logs", "--timestamps", "--tail", "50", "--since", "10m",
        "--follow", "clipper-blue-backend",
    ]  # fmt: skip
    assert commands.access_log(20, follow=True) == [
        "sudo", "-n", "tail", "-n", "20", "-F", host_layout.NGINX_ACCESS_LOG,
    ]  # fmt: skip


# ---------------------------------------------------------------- status


def host_status_json(
    active: str, releases: Sequence[str], healthy: bool = True, **extra: Any
) -> str:
    """The shape of `clipper-release status --json` (hostscripts/clipper-release gather_status)."""
    color = "green"
    doc = {
        "active_color": color,
        "active_release": active,
        "healthy": healthy,
        "colors": {
            "green": {"release": active, "ready": healthy, "containers": {
                "backend": {"name": "clipper-green-backend", "state": "running", "image": "b"},
                "frontend": {"name": "clipper-green-frontend", "state": "running", "image": "f"},
            }},
            "blue": {"release": None, "ready": False, "containers": {}},
        },
        "releases": [
            {"id": rid, "color": "green", "images": {"backend": f"b:{rid}", "frontend": f"f:{rid}"}}
            for rid in releases
        ],
        "history": [],
        "lock": None,
        "images": {},
        **extra,
    }  # fmt: skip
    return json.dumps(doc)


def test_a_hosts_status_names_its_live_release_images_and_previous_release() -> None:
    backups = (0, json.dumps([{"stamp": "20261201T031500Z"}, {"stamp": "20261202T031500Z"}]), "")
    s = parse_host_status("app-1", 0, host_status_json("v2-b", ["v2-b", "v1-a"]), "", backups)
    assert (s.reachable, s.healthy, s.active_color, s.active_release) == (
        True,
        True,
        "green",
        "v2-b",
    )
    assert s.images == {"backend": "b:v2-b", "frontend": "f:v2-b"}
    assert s.previous_release == "v1-a"
    assert s.containers == {
        "backend": "clipper-green-backend",
        "frontend": "clipper-green-frontend",
    }
    assert s.last_backup == "20261202T031500Z"


def test_an_unhealthy_host_still_reports_its_status() -> None:
    s = parse_host_status("app-2", 1, host_status_json("v2-b", ["v2-b"], healthy=False), "", None)
    assert s.reachable and not s.healthy


def test_a_host_ssh_cannot_reach_is_unreachable_with_ssh_s_words() -> None:
    s = parse_host_status(
        "app-2", 255, "", "ssh: connect to host 203.0.113.12 port 22: timed out", None
    )
    assert not s.reachable
    assert s.error == "ssh failed: ssh: connect to host 203.0.113.12 port 22: timed out"


@pytest.mark.parametrize(
    ("active", "newest_first"),
    [
        ("v3", ["v3", "v2", "v1"]),
        ("v2", ["v3", "v2", "v1"]),
        ("v1", ["v2", "v1"]),
        ("x", ["v2", "v1"]),
        ("v1", []),
    ],
)
def test_the_previous_release_is_the_one_the_host_script_would_pick(
    active: str, newest_first: list[str]
) -> None:
    records = [{"id": rid} for rid in reversed(newest_first)]  # the host keeps oldest first
    expected = rollback_target(records, active)
    assert previous_of(newest_first, active) == (expected["id"] if expected else None)


def _status(host: str, active: str, releases: Sequence[str] = (), **kw: Any) -> HostStatus:
    releases = tuple(releases) or (active,)
    return HostStatus(host, True, active_release=active, active_color="blue",
                      healthy=kw.pop("healthy", True), releases=releases,
                      previous_release=previous_of(releases, active), **kw)  # fmt: skip


def test_two_releases_live_is_a_problem_naming_both() -> None:
    problems = fleet_problems([_status("app-1", "v1-a"), _status("app-2", "v2-b")])
    assert problems == ["2 releases are live: v1-a on app-1; v2-b on app-2"]


def test_an_unhealthy_or_unreachable_host_is_a_problem() -> None:
    down = HostStatus("app-2", False, error="ssh failed: timed out")
    problems = fleet_problems([_status("app-1", "v1-a", healthy=False), down])
    assert problems == [
        "app-1 is unhealthy: its live colour blue is not ready",
        "app-2 did not answer: ssh failed: timed out",
    ]


def test_a_host_serving_other_images_than_shipped_is_a_problem() -> None:
    images = {"backend": "b@sha256:old", "frontend": "f@sha256:2"}
    statuses = [_status("app-1", "v1-a", images=images)]
    assert fleet_problems(statuses, {"backend": "b@sha256:1", "frontend": "f@sha256:2"}) == [
        "app-1 serves {'backend': 'b@sha256:old'} where the stack shipped {'backend': 'b@sha256:1'}"
    ]
    assert fleet_problems(statuses, {"backend": "b@sha256:old"}) == []


def test_the_table_has_one_row_per_host() -> None:
    lock = {"command": "clipper-release deploy", "user": "ci", "pid": 7, "started_at": "T"}
    table = status_table([_status("app-1", "v1-a", lock=lock), HostStatus("app-2", False)])
    header, first, second = table.splitlines()
    assert header.split()[:4] == ["HOST", "COLOUR", "RELEASE", "HEALTH"]
    assert "clipper-release deploy by ci (pid 7, since T)" in first
    assert second.split()[:4] == ["app-2", "-", "-", "UNREACHABLE"]


# ---------------------------------------------------------------- rollback decisions


def test_a_rollback_goes_to_the_previous_release_the_hosts_share() -> None:
    statuses = [_status(h, "v2-b", ["v2-b", "v1-a"]) for h in ("app-1", "app-2")]
    assert plan_rollback(statuses, None) == RollbackPlan("v1-a", ("app-1", "app-2"), ())


def test_hosts_that_would_go_to_different_releases_are_refused_without_moving() -> None:
    statuses = [
        _status("app-1", "v1-a", ["v1-a", "v0-z"]),
        _status("app-2", "v2-b", ["v2-b", "v1-a"]),
    ]
    with pytest.raises(RollbackRefusedError, match=r"app-1 -> v0-z, app-2 -> v1-a.*--to ID"):
        plan_rollback(statuses, None)
    # With --to, a host already there is left alone (a re-run after a partial rollback).
    plan = plan_rollback(statuses, "v1-a")
    assert plan.already_there == ("app-1",)


def test_a_locked_host_refuses_the_rollback_naming_the_holder() -> None:
    lock = {"command": "clipper-release deploy", "user": "ci", "pid": 9, "started_at": "T"}
    statuses = [
        _status("app-1", "v2-b", ["v2-b", "v1-a"]),
        _status("app-2", "v2-b", ["v2-b", "v1-a"], lock=lock),
    ]
    with pytest.raises(
        RollbackRefusedError, match="app-2 is locked by clipper-release deploy by ci"
    ) as err:
        plan_rollback(statuses, None)
    assert err.value.exit_code == EXIT_LOCKED


def test_a_release_missing_on_a_host_is_refused() -> None:
    statuses = [_status("app-1", "v2-b", ["v2-b", "v1-a"]), _status("app-2", "v2-b", ["v2-b"])]
    with pytest.raises(RollbackRefusedError, match="release v1-a is not recorded on app-2"):
        plan_rollback(statuses, "v1-a")
    with pytest.raises(RollbackRefusedError, match="app-2 has no release before the live one"):
        plan_rollback(statuses, None)


def test_an_unreachable_host_refuses_the_rollback() -> None:
    statuses = [_status("app-1", "v2-b", ["v2-b", "v1-a"]), HostStatus("app-2", False, error="x")]
    with pytest.raises(RollbackRefusedError, match="app-2 did not answer: nothing was rolled back"):
        plan_rollback(statuses, None)


# ---------------------------------------------------------------- rollback sequencing


SWITCHED = "switched: v1-a serves on blue (0.5s after the rollback started)"
HOSTS = tuple(_host(name=f"app-{n}", address=f"203.0.113.1{n}") for n in (1, 2, 3))


class ScriptedHosts:
    """STAND-IN for SSH to three hosts (a real two-host run is in tests/host): each host
    answers with the lines `clipper-release rollback` prints, at scripted times."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.calls: list[tuple[str, list[str]]] = []
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def __call__(self, host: FleetHost, remote: Sequence[str]) -> HostRun:
        self.calls.append((host.name, list(remote)))
        self.now += 1.0
        if host.name == self.fail_on:
            line = Line(
                self.now, "stderr", "clipper-release rollback: the blue colour did not become ready"
            )
            self.now += 9.0
            return HostRun(host.name, 1, [line])
        lines = [
            Line(self.now, "stdout", "[06:00:00] rolling back from v2-b on green to v1-a"),
            Line(self.now + 0.5, "stdout", f"[06:00:01] {SWITCHED}"),
            Line(self.now + 3.0, "stdout", "clipper-release: rolled back to v1-a on blue"),
        ]
        self.now += 3.0
        return HostRun(host.name, 0, lines)


def test_every_host_rolls_back_in_order_and_the_time_until_all_switched_is_known() -> None:
    hosts = ScriptedHosts()
    plan = RollbackPlan("v1-a", tuple(h.name for h in HOSTS), ())
    report = roll_back(HOSTS, plan, hosts, started=100.0, clock=hosts.clock)
    assert [name for name, _ in hosts.calls] == ["app-1", "app-2", "app-3"]
    assert all(remote[-2:] == ["--to", "v1-a"] for _, remote in hosts.calls)
    assert report.moved == ["app-1", "app-2", "app-3"]
    # The last switch: 3 hosts x 1 s connect + 2 x 3 s runs before it + its own 0.5 s.
    assert report.all_switched_after == pytest.approx(9.5)
    assert "all hosts on it 9.5s after the rollback started" in report.summary()


def test_a_failure_stops_the_rollback_and_says_which_hosts_moved() -> None:
    hosts = ScriptedHosts(fail_on="app-2")
    plan = RollbackPlan("v1-a", tuple(h.name for h in HOSTS), ())
    report = roll_back(HOSTS, plan, hosts, started=100.0, clock=hosts.clock)
    assert [name for name, _ in hosts.calls] == ["app-1", "app-2"], "app-3 was not touched"
    assert report.moved == ["app-1"] and report.not_attempted == ["app-3"]
    assert report.failed is not None and "did not become ready" in report.failed.detail
    assert report.all_switched_after is None
    assert "stopped at app-2, which failed; moved: app-1; not attempted: app-3" in report.summary()


def test_a_host_already_on_the_target_is_not_touched() -> None:
    hosts = ScriptedHosts()
    plan = RollbackPlan("v1-a", ("app-1", "app-2"), ("app-1",))
    report = roll_back(HOSTS[:2], plan, hosts, started=100.0, clock=hosts.clock)
    assert [name for name, _ in hosts.calls] == ["app-2"]
    assert [o.state for o in report.outcomes] == ["already there", "moved"]


def test_the_switch_is_the_moment_the_switched_line_arrived() -> None:
    lines = [Line(1.0, "stdout", "[x] rolling back"), Line(2.5, "stdout", f"[x] {SWITCHED}")]
    assert switch_moment(lines) == 2.5
    assert switch_moment([Line(3.0, "stdout", "clipper-release: v1-a serves on blue")]) == 3.0
    assert switch_moment([Line(1.0, "stdout", "draining green")]) is None


# ---------------------------------------------------------------- logs


NOW = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("since", "expected"),
    [("90s", NOW - dt.timedelta(seconds=90)), ("1h30m", NOW - dt.timedelta(minutes=90)),
     ("2026-12-02T05:00:00Z", dt.datetime(2026, 12, 2, 5, tzinfo=dt.UTC))],
)  # fmt: skip
def test_since_is_a_duration_or_a_time(since: str, expected: dt.datetime) -> None:
    assert since_cutoff(since, NOW) == expected


def test_a_bad_since_says_what_is_allowed() -> None:
    with pytest.raises(SinceError, match=r"--since 'yesterday': give a duration \(90s"):
        since_cutoff("yesterday", NOW)


def test_access_log_lines_before_since_are_dropped() -> None:
    cutoff = NOW - dt.timedelta(minutes=10)
    assert access_line_after('{"time":"2026-12-02T05:55:00+00:00","status":200}', cutoff)
    assert not access_line_after('{"time":"2026-12-02T05:40:00+00:00","status":200}', cutoff)
    assert access_line_after("not json", cutoff)


def test_lines_are_prefixed_by_an_aligned_host_name() -> None:
    assert prefixed("app-1", "GET /", 7) == "app-1   | GET /"


# ---------------------------------------------------------------- the command line


def test_missing_outputs_stop_the_command_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.__main__ import main

    code = main(
        ["ops", "--stack", "staging", "--outputs-file", str(tmp_path / "no.json"), "status"]
    )
    assert code == 2
    assert f"cannot read --outputs-file {tmp_path / 'no.json'}" in capsys.readouterr().err


def test_a_bad_since_stops_before_any_ssh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.fleet.cli import main

    file = tmp_path / "outputs.json"
    file.write_text(json.dumps(outputs()))
    code = main(["--stack", "production", "--outputs-file", str(file), "logs", "--since", "soon"])
    assert code == 2
    assert "--since 'soon': give a duration" in capsys.readouterr().out


def test_an_outputs_file_others_can_read_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "outputs.json"
    file.write_text(json.dumps(outputs()))
    file.chmod(0o600)
    read_outputs("production", file)
    assert capsys.readouterr().err == ""
    file.chmod(0o644)
    read_outputs("production", file)
    assert f"chmod 600 {file}" in capsys.readouterr().err
