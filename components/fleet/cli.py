"""`python -m components ops --stack STACK ...`: the fleet command's command line.

    status [--json] [--expect-shipped]   every host: colour, release, health, lock, backup, images
    rollback [--to ID]                   every host back, one at a time, stop at the first failure
    logs [--source backend|frontend|nginx] [--since 10m] [--lines N] [--follow]
    lock [--json]                        who holds each host's deploy lock

Exit codes: 0 fine; 1 the fleet is unhealthy or disagrees (status), a host failed (rollback),
or a host did not answer; 2 usage, outputs or a refused rollback; 75 a host is locked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from components.fleet import commands
from components.fleet.logs import SinceError, access_line_after, prefixed, since_cutoff
from components.fleet.outputs import (
    Fleet,
    FleetHost,
    OutputsError,
    fleet_from_outputs,
    read_outputs,
    select_hosts,
)
from components.fleet.rollback import RollbackRefusedError, plan_rollback, roll_back
from components.fleet.ssh import HostRun, Line, SshRunner, ssh_access
from components.fleet.status import (
    HostStatus,
    fleet_problems,
    lock_table,
    parse_host_status,
    status_json,
    status_table,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components ops", description="Every host of a stack at once, over SSH."
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument(
        "--outputs-file", type=Path, help="the JSON of `pulumi stack output --json --show-secrets`"
    )
    parser.add_argument("--ssh-config", type=Path, help="an ssh_config (bastion, ports) for ssh -F")
    parser.add_argument("--role", default="app", help="which hosts (fleetHosts role; default app)")
    parser.add_argument("--host", action="append", default=[], help="only this host (repeatable)")
    sub = parser.add_subparsers(dest="action", required=True)
    status = sub.add_parser("status", help="one table of every host")
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--expect-shipped",
        action="store_true",
        help="also fail unless every host serves the stack's releaseImages output",
    )
    back = sub.add_parser("rollback", help="every host back to the previous (or --to) release")
    back.add_argument("--to", metavar="RELEASE", help="a release id from status --json")
    logs = sub.add_parser("logs", help="recent lines from every host, prefixed by host")
    logs.add_argument("--source", choices=commands.LOG_SOURCES, default="backend")
    logs.add_argument("--since", help="a duration (10m, 1h30m) or an ISO 8601 time")
    logs.add_argument("--lines", type=int, default=100, help="per host (default 100)")
    logs.add_argument("--follow", "-f", action="store_true")
    lock = sub.add_parser("lock", help="who holds each host's deploy lock")
    lock.add_argument("--json", action="store_true")
    return parser


def gather(runner: SshRunner, hosts: Sequence[FleetHost]) -> list[HostStatus]:
    """Every host's status (and the backup host's last backup), all hosts at once."""

    def one(host: FleetHost) -> HostStatus:
        run = runner.run(host, commands.release_status(), timeout=60)
        backup = None
        if host.backups:
            listed = runner.run(host, commands.backup_list(), timeout=60)
            backup = (listed.returncode, listed.stdout, listed.stderr)
        return parse_host_status(host.name, run.returncode, run.stdout, run.stderr, backup)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def _say(message: str) -> None:
    print(f"ops: {message}", flush=True)


def do_status(fleet: Fleet, runner: SshRunner, hosts: Sequence[FleetHost], args: Any) -> int:
    statuses = gather(runner, hosts)
    shipped = fleet.release_images if args.expect_shipped else None
    if args.expect_shipped and not shipped:
        _say("--expect-shipped: the outputs have no releaseImages")
        return EXIT_USAGE
    problems = fleet_problems(statuses, shipped)
    if args.json:
        print(status_json(statuses, problems))
    else:
        print(status_table(statuses))
        for problem in problems:
            print(f"PROBLEM: {problem}")
        if not problems:
            print(f"{fleet.stack}: {len(statuses)} host(s), one release live, all healthy")
    return EXIT_FAILED if problems else EXIT_OK


def do_lock(runner: SshRunner, hosts: Sequence[FleetHost], args: Any) -> int:
    statuses = gather(runner, hosts)
    if args.json:
        print(json.dumps({s.host: s.lock if s.reachable else {"error": s.error}
                          for s in statuses}, indent=2))  # fmt: skip
    else:
        print(lock_table(statuses))
    return EXIT_OK if all(s.reachable for s in statuses) else EXIT_FAILED


def do_rollback(runner: SshRunner, hosts: Sequence[FleetHost], args: Any) -> int:
    started = time.monotonic()
    statuses = gather(runner, hosts)
    try:
        plan = plan_rollback(statuses, args.to)
    except RollbackRefusedError as err:
        _say(f"rollback refused: {err}")
        return err.exit_code
    width = max(len(h.name) for h in hosts)
    _say(f"rolling back {', '.join(plan.order)} to {plan.target}, one host at a time")

    def run(host: FleetHost, remote: Sequence[str]) -> HostRun:
        _say(f"{host.name}: {' '.join(remote)}")
        return runner.run(host, remote, on_line=lambda name, line: print(
            prefixed(name, line.text, width), flush=True), timeout=900)  # fmt: skip

    report = roll_back(hosts, plan, run, started=started)
    if report.failed is not None:
        failed_at = [h for h in hosts if h.name == report.failed.host]
        for status in gather(runner, failed_at):
            report.still_serving[status.host] = (
                f"{status.active_release} ({'healthy' if status.healthy else 'UNHEALTHY'})"
                if status.reachable
                else f"unknown: {status.error}"
            )
    for line in report.summary().splitlines():
        _say(line)
    _say(f"done in {time.monotonic() - started:.1f}s")
    return EXIT_FAILED if report.failed else EXIT_OK


def do_logs(runner: SshRunner, hosts: Sequence[FleetHost], args: Any) -> int:
    cutoff = None
    if args.since:
        try:
            cutoff = since_cutoff(args.since, dt.datetime.now(dt.UTC))
        except SinceError as err:
            _say(str(err))
            return EXIT_USAGE
    statuses = {s.host: s for s in gather(runner, hosts)} if args.source != "nginx" else {}
    width = max(len(h.name) for h in hosts)
    out = threading.Lock()

    def show(name: str, line: Line) -> None:
        if args.source == "nginx" and cutoff and not access_line_after(line.text, cutoff):
            return
        with out:
            print(prefixed(name, line.text, width), flush=True)

    def one(host: FleetHost) -> HostRun:
        if args.source == "nginx":
            remote = commands.access_log(args.lines, args.follow)
        else:
            container = statuses[host.name].containers.get(args.source)
            if not container:
                why = statuses[host.name].error or "no live colour"
                show(host.name, Line(time.monotonic(), "stderr", f"ops: no {args.source}: {why}"))
                return HostRun(host.name, EXIT_FAILED)
            remote = commands.container_logs(container, args.since, args.lines, args.follow)
        return runner.run(host, remote, on_line=show, timeout=None if args.follow else 120)

    return _run_on_each_host(runner, hosts, one)


def _run_on_each_host(
    runner: SshRunner, hosts: Sequence[FleetHost], one: Callable[[FleetHost], HostRun]
) -> int:
    """`one(host)` on every host at once; Ctrl-C (how `--follow` ends) closes every session.

    Ctrl-C sets an event instead of raising KeyboardInterrupt: an interrupt raised inside the
    threading module's own bookkeeping (a worker's `is_alive`) can leave it in a state that
    hangs the interpreter's exit, which is how `logs --follow` once failed to end."""
    runs: dict[str, HostRun] = {}
    workers = [
        threading.Thread(target=lambda h=h: runs.__setitem__(h.name, one(h)), daemon=True)
        for h in hosts
    ]
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        for worker in workers:
            worker.start()
        while not interrupted.is_set() and any(worker.is_alive() for worker in workers):
            interrupted.wait(0.2)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        runner.stop()  # `--follow` ends here: close every host's session
        return EXIT_OK
    return EXIT_OK if all(r.returncode == 0 for r in runs.values()) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        doc = read_outputs(args.stack, args.outputs_file)
        fleet = fleet_from_outputs(args.stack, doc, args.role)
        hosts = select_hosts(fleet, args.host)
    except OutputsError as err:
        print(f"ops: {err}", file=sys.stderr)
        return EXIT_USAGE
    with ssh_access(fleet, args.ssh_config) as access:
        runner = SshRunner(access)
        if args.action == "status":
            return do_status(fleet, runner, hosts, args)
        if args.action == "lock":
            return do_lock(runner, hosts, args)
        if args.action == "rollback":
            return do_rollback(runner, hosts, args)
        return do_logs(runner, hosts, args)
