"""clipper-release: zero-downtime blue-green releases of Clipper on one app host.

    clipper-release deploy                 ship the release described by deploy.json + backend.env
    clipper-release rollback [--to ID]     go back to the previous (or a named) release
    clipper-release status [--json]        active colour, releases, containers and readiness
    clipper-release migrate-force VERSION  after a failed migration, mark the schema clean

Run as root. Reads /etc/clipper/deploy.json (or $CLIPPER_DEPLOY_CONFIG), rendered by
components/renderers/deploy_config.py; secrets come only from the env files it names (mode 0600)
and reach docker through its environment (`-e NAME`), never on a command line.

A deploy: take the host lock -> find the active colour (the nginx include on disk) -> stop if the
active colour already runs this release -> pull missing images -> as the admin, create the
PostgreSQL extensions and grant the app user CREATE on schema public -> run the release's
migrations (golang-migrate as the app user, over the cluster's direct connection, with a bounded
lock_timeout) -> switch (switch.py: start the idle colour, ready, steady, nginx, verified
through nginx) -> record the release -> drain -> stop (keep) the old colour -> prune. Every step
is idempotent: a deploy killed anywhere is finished or undone by running it again, and the
active colour keeps serving meanwhile. After every deploy or rollback attempt the release
metrics (clipper_release.prom) are rewritten.

Exit codes: 0 done, 1 the release failed (the old one still serves), 2 bad configuration or
usage, 75 another deploy, rollback, backup or drill holds the host lock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .book import ReleaseBook
from .clock import parse_iso
from .containers import ColorState
from .decisions import other_color, release_record, rollback_target
from .envfile import read_env_file
from .errors import EXIT_OK, ConfigError, HostError
from .files import atomic_write, read_json_object
from .host import Host, say
from .lock import host_lock
from .metrics import render_release_metrics, write_textfile
from .migrations import parse_migrate_version
from .release_config import CONFIG_ENV, DEFAULT_CONFIG, Config, load_config
from .release_status import status
from .release_steps import prune, run_migrations
from .switch import Switch, retire, settle_active

PENDING_ROLLBACK = "rollback.pending"  # in the state dir while a rollback is under way
EXIT_INTERRUPTED = 130


def _took_lock(lock: Path) -> None:
    say(f"took the deploy lock ({lock}; deploy, rollback, backup and drill share it)")


def deploy(config: Config) -> int:
    started = time.monotonic()
    host = Host(config)
    with host_lock(config.state_dir, "clipper-release deploy") as lock:
        _took_lock(lock)
        env = read_env_file(config.backend_env_file)
        release = release_record(config.images, env, config.runtime)
        book = ReleaseBook(config.state_dir)
        active, states = settle_active(host)
        idle = other_color(active)
        say(f"release {release['id']}: active colour is {active}")

        live = states[active]
        if live.fingerprint == release["fingerprint"] and host.is_ready(live):
            book.activate(release, active, "deploy", move_to_end=book.active != release["id"])
            (config.state_dir / PENDING_ROLLBACK).unlink(missing_ok=True)
            retire(host, idle, states[idle])
            prune(host, book)
            print(
                f"clipper-release: already deployed: {release['id']} serves on {active}", flush=True
            )
            return EXIT_OK

        say("checking images")
        host.pull_missing(release["images"])
        say(
            f"preparing the database: extensions {', '.join(config.extensions) or '(none)'},"
            " the app user's rights on schema public"
        )
        host.prepare_database(env)
        say("running migrations")
        for line in run_migrations(host, release, env):
            say(f"  migrate | {line}")

        target = states[idle]
        reuse = target.exists and target.fingerprint == release["fingerprint"]
        Switch(host, active, states, release, env, reuse).run(book, "deploy", move_to_end=True)
        (config.state_dir / PENDING_ROLLBACK).unlink(missing_ok=True)  # a deploy supersedes it
        retire(host, active, host.colors()[active])
        prune(host, book)
        print(
            f"clipper-release: deployed {release['id']} on {idle} in"
            f" {time.monotonic() - started:.1f}s; {active} is stopped and kept for rollback",
            flush=True,
        )
        return EXIT_OK


def _rollback_target(
    book: ReleaseBook, active_id: str | None, to: str | None, pending: Mapping[str, Any] | None
) -> tuple[Mapping[str, Any], str]:
    """Where a rollback goes, and a note on how that was chosen. An interrupted plain rollback
    is finished; a failed `--to X` is not resumed by a later plain rollback."""
    note = ""
    wanted = to
    if not to and pending:
        if pending.get("explicit"):
            note = (
                f"a failed `rollback --to {pending.get('to')}` was left recorded; it is cleared:"
                " this plain rollback goes one release back"
            )
        else:
            wanted = pending.get("to")
            note = f"finishing an interrupted rollback to {wanted}"
    if wanted:
        found = book.get(str(wanted))
        if found is None:
            known = ", ".join(r["id"] for r in book.releases) or "none"
            raise HostError(f"no release {wanted!r} on this host; recorded: {known}")
        return found, note
    candidate = rollback_target(book.releases, active_id)
    if candidate is None:
        raise HostError(f"no release before {active_id} is recorded on this host")
    return candidate, note


def rollback(config: Config, to: str | None) -> int:
    started = time.monotonic()
    host = Host(config)
    command = "clipper-release rollback" + (f" --to {to}" if to else "")
    with host_lock(config.state_dir, command) as lock:
        _took_lock(lock)
        book = ReleaseBook(config.state_dir)
        active, states = settle_active(host)
        idle = other_color(active)
        # The record says what serves, not which colour answered faster.
        active_id = book.active or states[active].release
        pending_path = config.state_dir / PENDING_ROLLBACK
        target, note = _rollback_target(book, active_id, to, read_json_object(pending_path))
        if note:
            say(note)
        env = read_env_file(config.backend_env_file)
        if target["id"] == active_id and host.is_ready(states[active]):
            # Already there (a re-run after a kill): finish the bookkeeping only.
            _settle_rolled_back(host, book, target, active, states)
            pending_path.unlink(missing_ok=True)
            print(f"clipper-release: {target['id']} serves on {active}", flush=True)
            return EXIT_OK
        _record_pending(pending_path, target["id"], active_id, explicit=bool(to))
        say(f"rolling back from {active_id} on {active} to {target['id']}")
        record = _rollback_release(config, target, env)
        reuse = _prepare_standby(host, states[idle], target, record)
        switch = Switch(host, active, states, record, env, reuse)
        _switch_back(switch, book, pending_path, active_id)
        took = time.monotonic() - started
        retire(host, active, host.colors()[active])
        pending_path.unlink(missing_ok=True)
        print(
            f"clipper-release: rolled back to {target['id']} on {idle};"
            f" traffic moved in {took:.1f}s",
            flush=True,
        )
        return EXIT_OK


def _settle_rolled_back(
    host: Host,
    book: ReleaseBook,
    target: Mapping[str, Any],
    active: str,
    states: Mapping[str, ColorState],
) -> None:
    """The target already serves on `active`: record it as active when the record lags (a
    kill after the switch), and retire the other colour."""
    if book.active != target["id"]:
        book.activate(dict(target), active, "rollback", move_to_end=False)
    idle = other_color(active)
    retire(host, idle, states[idle])


def _record_pending(pending_path: Path, to: str, from_id: str | None, *, explicit: bool) -> None:
    """Written before anything moves, so a re-run after a kill finishes this rollback instead
    of stepping one more release back."""
    atomic_write(
        pending_path,
        json.dumps({"to": to, "from": from_id, "explicit": explicit}) + "\n",
    )


def _rollback_release(
    config: Config, target: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any]:
    """The target's images with TODAY's env file: a rotated secret never comes back with a
    rollback."""
    return {
        **release_record(target["images"], env, config.runtime),
        "id": target["id"],
    }


def _prepare_standby(
    host: Host, standby: ColorState, target: Mapping[str, Any], record: Mapping[str, Any]
) -> bool:
    """Whether the idle colour's containers can be resumed for `record`; when not, say why they
    are recreated and pull the target's images."""
    reuse = standby.exists and standby.fingerprint == record["fingerprint"]
    if not reuse:
        why = (
            f"the containers of {target['id']} carry an older env file (a secret was rotated since)"
            if standby.exists and standby.release == target["id"]
            else f"no containers of {target['id']} are left"
        )
        say(
            f"{why}: recreating them from its images with the current env file"
            " (migrations are not rolled back: the schema stays as is)"
        )
        host.pull_missing(target["images"])
    return reuse


def _switch_back(
    switch: Switch, book: ReleaseBook, pending_path: Path, active_id: str | None
) -> None:
    """Move traffic to the rollback target. When the switch fails (and is undone), the pending
    record goes too: the next plain rollback goes one release back, not to this target."""
    try:
        switch.run(book, "rollback", move_to_end=False)
    except HostError as exc:
        pending_path.unlink(missing_ok=True)
        raise HostError(
            f"{exc}\nthe rollback to {switch.release['id']} was not recorded as pending"
            f" ({pending_path} removed): the next plain rollback goes one release back"
            f" from {active_id}"
        ) from None


def migrate_force(config: Config, version: int) -> int:
    """After a failed migration (schema dirty): set golang-migrate's version to `version` and
    clear the dirty mark, as `migrate force`, with the pinned image over the direct connection.
    It runs no migration: the operator first repairs what the failed one left half done.
    Refused when the schema is not dirty: forcing a clean schema would skip or repeat
    migrations."""
    host = Host(config)
    with host_lock(config.state_dir, f"clipper-release migrate-force {version}"):
        login = host.migrate_login(read_env_file(config.backend_env_file))
        image = config.images["migrate"]
        host.pull_missing({"migrate": image})
        # `force` reads no migration file; golang-migrate only needs a source to open.
        with tempfile.TemporaryDirectory(prefix=".migrate-force-", dir=config.state_dir) as tmp:
            empty = Path(tmp)
            before = host.migrate(image, login, empty, "version")
            say(f"schema on {login.target}: {describe_schema(before)}")
            if not _is_dirty(before):
                raise HostError(
                    f"the schema is not dirty ({describe_schema(before)}): migrate-force is only"
                    " for a migration that failed halfway. Nothing was changed."
                )
            forced = host.migrate(image, login, empty, "force", str(version))
            output = (forced.stdout + forced.stderr).strip()
            if forced.returncode != 0:
                raise HostError(
                    f"golang-migrate force {version} failed (exit {forced.returncode}):\n"
                    + "\n".join(f"  | {line}" for line in output.splitlines())
                )
            for line in output.splitlines():
                say(f"  migrate | {line}")
            after = host.migrate(image, login, empty, "version")
        print(
            f"clipper-release: schema version forced to {version}; now {describe_schema(after)}."
            " Deploy the fixed release.",
            flush=True,
        )
        return EXIT_OK


def _is_dirty(proc: subprocess.CompletedProcess[str]) -> bool:
    try:
        return parse_migrate_version(proc.stdout + proc.stderr)[1]
    except HostError:
        return False


def describe_schema(proc: subprocess.CompletedProcess[str]) -> str:
    """golang-migrate `version`'s answer in words (its own error when it has none)."""
    output = (proc.stdout + proc.stderr).strip()
    try:
        current, dirty = parse_migrate_version(output)
    except HostError:
        return f"unknown ({output or f'exit {proc.returncode}'})"
    if current is None:
        return "no migration applied"
    return f"version {current}" + (" (dirty)" if dirty else " (clean)")


def force_version(text: str) -> int:
    """argparse type of `migrate-force VERSION`: a migration version, or -1 for none."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a migration version") from None
    if value < -1:
        raise argparse.ArgumentTypeError("a version is >= 0 (or -1: no migration applied)")
    return value


def write_release_metrics(config: Config, success: bool) -> None:
    """clipper_release.prom after a deploy or rollback attempt (from the release record)."""
    try:
        book = ReleaseBook(config.state_dir)
    except ConfigError:
        return
    serving = book.get(book.active) if book.active else None
    switches = [h for h in book.history if h.get("action") in ("deploy", "rollback")]
    last_change = None
    if switches:
        try:
            last_change = parse_iso(str(switches[-1]["at"])).timestamp()
        except (KeyError, ValueError):
            last_change = None
    text = render_release_metrics(serving, last_change, success, time.time())
    warning = write_textfile(config.metrics_file, text)
    if warning:
        say(warning)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="clipper-release", description=__doc__.split("\n\n")[0])
    top.add_argument(
        "--config", type=Path, help=f"deploy.json (default: ${CONFIG_ENV} or {DEFAULT_CONFIG})"
    )
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("deploy", help="ship the release described by deploy.json and the env file")
    back = commands.add_parser("rollback", help="return to the previous release")
    back.add_argument(
        "--to", metavar="RELEASE", help="a release id from `status` instead of the previous one"
    )
    show = commands.add_parser("status", help="active colour, releases, containers and readiness")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    force = commands.add_parser(
        "migrate-force",
        help="after a failed migration: mark the schema clean at VERSION (golang-migrate force)",
    )
    force.add_argument(
        "version",
        type=force_version,
        metavar="VERSION",
        help="the last migration that is fully applied (-1: none)",
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config: Config | None = None
    ok = False
    try:
        config = load_config(args.config)
        if args.command == "deploy":
            code = deploy(config)
        elif args.command == "rollback":
            code = rollback(config, args.to)
        elif args.command == "migrate-force":
            code = migrate_force(config, args.version)
        else:
            return status(config, args.json)
        ok = code == EXIT_OK
        return code
    except HostError as exc:
        print(f"clipper-release {args.command}: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            f"clipper-release {args.command}: interrupted; run it again to finish", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    finally:
        if config is not None and args.command in ("deploy", "rollback"):
            write_release_metrics(config, ok)
