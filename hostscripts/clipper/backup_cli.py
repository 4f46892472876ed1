"""clipper-backup: logical PostgreSQL backups of Clipper to DigitalOcean Spaces, and restores.

    clipper-backup backup                       dump the app database, upload it with a manifest
    clipper-backup list [--json]                the complete backups in the bucket, newest last
    clipper-backup restore --from KEY|latest --target-db NAME [--role ROLE]
                           [--i-know-this-overwrites-production]
    clipper-backup drill [--max-age-hours N]    restore the latest into a scratch database, check
                                                it, drop it

Run as root by systemd timers on the first app host (components/backups.py). Reads
/etc/clipper/backup.json (or $CLIPPER_BACKUP_CONFIG, or --config), rendered by
components/renderers/backup_units.py. Secrets come only from mode-0600 env files: the Spaces key
(`credentials_file`) and the PostgreSQL admin login (`db_admin_env_file`, libpq's PG*
variables). They reach rclone and pg_dump through their environment, never a command line.

A backup, step by step: take the host lock (shared with clipper-release: no migration runs
while pg_dump holds its locks) -> check free disk space -> check that pg_dump is at least the
server's major version -> `pg_dump --format=custom` -> read the archive back (`pg_restore
--list`) -> sha256 -> archive the host's non-secret config (deploy.json, the nginx site; never an
env file) -> upload both -> check the bucket lists them at their sizes -> upload the manifest
LAST -> check it is listed -> write node_exporter textfile metrics. A backup exists only when its
manifest does: `list`, `restore latest` and `drill` see nothing else, so a run that fails midway
never becomes "latest". SIGTERM (systemd's timeout) ends a run like a failure: the local dump
is deleted, the lock released, the failure metric written.

Object keys: `<prefix>/postgres/YYYY/MM/DD/<stamp>.dump` and `.json` (the manifest), and
`<prefix>/config/YYYY/MM/DD/<stamp>.tar.gz`; `<stamp>` is UTC `YYYYMMDDTHHMMSSZ`, so names sort
by time. Retention is the bucket's lifecycle rule (backupRetentionDays), not this script.

Exit codes: 0 done, 1 failed, 2 bad configuration or usage, 75 another run holds the host lock.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from .backup_config import CONFIG_ENV, DB_NAME_RE, DEFAULT_CONFIG, SCHEMA_VERSION, Config
from .backup_plan import (
    backup_keys,
    complete_manifests,
    drill_database,
    dump_fits,
    leftover_drill_databases,
    manifest_key_for,
)
from .backup_store import Postgres, Spaces
from .clock import iso, now_utc, parse_iso
from .envfile import read_secret_env
from .errors import EXIT_FAILED, EXIT_OK, ConfigError, HostError, LockHeldError
from .lock import host_lock
from .metrics import read_gauges, render_gauges, write_textfile

MANIFEST_KIND = "clipper-postgres-backup"
CREDENTIAL_KEYS = ("SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY")

METRIC_HELP: dict[str, str] = {
    "clipper_backup_last_success_timestamp_seconds": "End of the last complete backup.",
    "clipper_backup_last_failure_timestamp_seconds": "End of the last failed backup.",
    "clipper_backup_last_size_bytes": "Size of the last complete backup's dump.",
    "clipper_backup_last_duration_seconds": "Duration of the last complete backup.",
    "clipper_backup_drill_last_success_timestamp_seconds": "End of the last passing drill.",
    "clipper_backup_drill_last_failure_timestamp_seconds": "End of the last failing drill.",
}


class TerminatedError(HostError):
    """SIGTERM (systemd's TimeoutStartSec, or a stop): unwound like a failure."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise TerminatedError("stopped by SIGTERM (systemd's timeout or a stop); nothing was kept")


def say(message: str) -> None:
    print(f"clipper-backup: {message}", flush=True)


def step(message: str) -> None:
    say(f"==> {message}")


def update_metrics(path: Path, values: dict[str, float]) -> None:
    """Merge `values` into the backup's textfile (the others keep their last value)."""
    current = {**read_gauges(path, METRIC_HELP), **values}
    warning = write_textfile(path, render_gauges(METRIC_HELP, current))
    if warning:
        say(warning)


def check_free_space(config: Config, pg: Postgres) -> None:
    """Refuse before dumping when the dump could not fit in the work dir: twice the last
    dump's size when one was made here, else the database's own size (a safe upper bound)."""
    config.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    free = shutil.disk_usage(config.work_dir).free
    last = read_gauges(config.metrics_file, METRIC_HELP).get("clipper_backup_last_size_bytes")
    needed = int(last * 2) if last else pg.database_bytes()
    if not dump_fits(free, needed):
        basis = "twice the last dump" if last else "the database's size"
        raise HostError(
            f"not enough free disk space in {config.work_dir}: {free} bytes free, the dump may"
            f" need {needed} bytes ({basis}); free space or grow the disk. Nothing was dumped."
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_archive(files: Sequence[Path], target: Path) -> list[str]:
    """tar.gz of the host's non-secret config. A file is taken only when everyone may read it
    and it is not an env file, so a secret (mode 0600) can never slip in."""
    taken: list[str] = []
    with tarfile.open(target, "w:gz") as archive:
        for path in files:
            try:
                info = path.stat()
            except FileNotFoundError:
                say(f"   config: {path} is not on this host; skipped")
                continue
            if path.name.endswith(".env") or not info.st_mode & stat.S_IROTH:
                raise HostError(f"refusing to back up {path}: it looks secret (env or 0600)")
            archive.add(str(path), arcname=str(path).lstrip("/"), recursive=False)
            taken.append(str(path))
    return taken


def release_record(path: Path) -> dict[str, Any] | None:
    """The active release from clipper-release's releases.json, if there is one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    active = doc.get("active") if isinstance(doc, dict) else None
    for record in doc.get("releases", []) if active else []:
        if isinstance(record, dict) and record.get("id") == active:
            return {k: record[k] for k in ("id", "images", "deployed_at", "color") if k in record}
    return {"id": active} if active else None


@dataclass
class Context:
    config: Config
    spaces: Spaces
    postgres: Postgres


def open_context(config: Config) -> Context:
    credentials = read_secret_env(config.credentials_file, CREDENTIAL_KEYS)
    login = read_secret_env(config.db_admin_env_file, ("PGHOST", "PGUSER", "PGPASSWORD"))
    return Context(config, Spaces(config, credentials), Postgres(config, login))


def do_backup(ctx: Context) -> dict[str, Any]:
    """One backup: dump, archive the config, upload both, then the manifest (see the module
    docstring); returns the manifest."""
    config, spaces, pg = ctx.config, ctx.spaces, ctx.postgres
    started = time.monotonic()
    moment = now_utc()
    keys = backup_keys(config.prefix, moment)
    step(f"backup of database {config.database} ({config.environment}) at {iso(moment)}")
    check_free_space(config, pg)
    server, dump_version = check_client_version(pg)
    with tempfile.TemporaryDirectory(dir=config.work_dir, prefix="backup-") as tmp:
        work = Path(tmp)
        dump = work / "db.dump"
        dump_info = dump_database(config, pg, dump, keys["dump"])
        archive = work / "config.tar.gz"
        config_info = archive_host_config(config, archive, keys["config"])
        manifest = {
            "schema": SCHEMA_VERSION,
            "kind": MANIFEST_KIND,
            "environment": config.environment,
            "database": config.database,
            "created_at": iso(moment),
            "host": socket.gethostname(),
            "server_major": server,
            "pg_dump_version": dump_version,
            "release": release_record(config.releases_file),
            "dump": dump_info,
            "config": config_info,
        }
        manifest_file = work / "manifest.json"
        manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        upload_backup(
            spaces,
            [(dump, keys["dump"]), (archive, keys["config"])],
            manifest_file,
            keys["manifest"],
        )
    duration = time.monotonic() - started
    hold_into_next_second(moment)
    update_metrics(
        config.metrics_file,
        {
            "clipper_backup_last_success_timestamp_seconds": time.time(),
            "clipper_backup_last_size_bytes": dump_info["size"],
            "clipper_backup_last_duration_seconds": duration,
        },
    )
    step(f"backup complete in {duration:.1f}s: {keys['dump']}")
    return manifest


def check_client_version(pg: Postgres) -> tuple[int, str]:
    """Refuse a pg_dump older than the server (it cannot dump it); returns the server's major
    version and pg_dump's version."""
    step("checking the PostgreSQL client against the server")
    server = pg.server_major()
    dump_major, dump_version = pg.tool_version("pg_dump")
    if dump_major < server:
        raise HostError(
            f"pg_dump {dump_version} cannot dump a PostgreSQL {server} server: install"
            f" postgresql-client-{server}"
        )
    say(f"   server {server}, pg_dump {dump_version}")
    return server, dump_version


def dump_database(config: Config, pg: Postgres, dump: Path, key: str) -> dict[str, Any]:
    """pg_dump the app database into `dump` and read it back; returns the manifest's `dump`."""
    step(f"pg_dump --format=custom of {config.database}")
    pg.dump(dump)
    entries = pg.archive_entries(dump)
    size = dump.stat().st_size
    digest = sha256_of(dump)
    say(f"   {size} bytes, {entries} archive entries, sha256 {digest}")
    return {"key": key, "size": size, "sha256": digest, "entries": entries}


def archive_host_config(config: Config, archive: Path, key: str) -> dict[str, Any]:
    """The host's non-secret config into `archive`; returns the manifest's `config`."""
    step("archiving the host's non-secret config")
    files = config_archive(config.config_files, archive)
    say(f"   {len(files)} file(s): {', '.join(files) or 'none'}")
    return {
        "key": key,
        "size": archive.stat().st_size,
        "sha256": sha256_of(archive),
        "files": files,
    }


def upload_backup(
    spaces: Spaces, files: Sequence[tuple[Path, str]], manifest_file: Path, manifest_key: str
) -> None:
    """Upload `files` (local, key), each checked by its listed size, then the manifest LAST:
    until it is listed, this backup does not exist. On a failure every key tried is deleted."""
    uploaded: list[str] = []
    try:
        for local, key in files:
            step(f"uploading {key}")
            uploaded.append(key)
            spaces.upload(local, key)
            listed, expected = spaces.size_of(key), local.stat().st_size
            if listed != expected:
                raise HostError(f"{key}: the bucket lists {listed} bytes, not {expected}")
        step(f"uploading the manifest {manifest_key}")
        uploaded.append(manifest_key)
        spaces.upload(manifest_file, manifest_key)
        if spaces.size_of(manifest_key) != manifest_file.stat().st_size:
            raise HostError(f"{manifest_key} is not listed after its upload")
    except HostError:
        for key in reversed(uploaded):
            with contextlib.suppress(HostError):
                spaces.delete(key)
        raise


def hold_into_next_second(moment: datetime) -> None:
    """Stamps have one-second resolution: hold the lock into the next second so that a run
    right after this one never reuses (and overwrites) this backup's keys."""
    time.sleep(max(0.0, 1.0 - (now_utc() - moment).total_seconds()))


def read_manifest(ctx: Context, key: str) -> dict[str, Any]:
    try:
        manifest = json.loads(ctx.spaces.read(key))
    except ValueError:
        raise HostError(f"{key} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise HostError(f"{key} is not a clipper backup manifest")
    return manifest


def do_list(ctx: Context) -> list[dict[str, Any]]:
    keys = ctx.spaces.list_keys(f"{ctx.config.prefix}/postgres")
    rows = []
    for key in complete_manifests(keys):
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        rows.append({"key": key.removesuffix(".json") + ".dump", "stamp": name, "manifest": key})
    return rows


def restore_into(ctx: Context, selector: str, target: str, role: str | None) -> dict[str, Any]:
    """Download, verify and restore one backup into `target` (created when missing)."""
    config, spaces, pg = ctx.config, ctx.spaces, ctx.postgres
    step(f"finding backup {selector}")
    keys = spaces.list_keys(f"{config.prefix}/postgres")
    key = manifest_key_for(selector, config.prefix, keys, now_utc())
    manifest = read_manifest(ctx, key)
    dump_info = manifest["dump"]
    say(f"   {dump_info['key']} ({dump_info['size']} bytes, made {manifest['created_at']})")
    with tempfile.TemporaryDirectory(dir=config.work_dir, prefix="restore-") as tmp:
        dump = Path(tmp) / "db.dump"
        step(f"downloading {dump_info['key']}")
        spaces.download(dump_info["key"], dump)
        step("verifying the dump's sha256 against the manifest")
        digest = sha256_of(dump)
        if digest != dump_info["sha256"] or dump.stat().st_size != dump_info["size"]:
            raise HostError(
                f"{dump_info['key']} does not match its manifest (sha256 {digest}, expected"
                f" {dump_info['sha256']}): refusing to restore a corrupted or altered dump"
            )
        pg.archive_entries(dump)
        if not pg.database_exists(target):
            step(f"creating database {target}")
            pg.psql(f'CREATE DATABASE "{target}"')
        step(f"pg_restore --no-owner --clean --if-exists into {target}")
        pg.restore(dump, target, role)
    step(f"restored {dump_info['key']} into {target}")
    return manifest


def do_restore(ctx: Context, selector: str, target: str, role: str | None, force: bool) -> None:
    if not DB_NAME_RE.match(target):
        raise ConfigError(f"--target-db {target!r}: allowed: a plain lower-case database name")
    if role is not None and not DB_NAME_RE.match(role):
        raise ConfigError(f"--role {role!r}: allowed: a plain lower-case role name")
    if target == ctx.config.database and not force:
        raise ConfigError(
            f"--target-db {target} is the live app database: restoring replaces its data."
            " Restore into another database and check it, or add"
            " --i-know-this-overwrites-production"
        )
    restore_into(ctx, selector, target, role)


def sanity_checks(pg: Postgres, database: str) -> list[str]:
    """What a drill checks in a restored database; returns the report lines."""
    tables = int(
        pg.psql(
            "SELECT count(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')",
            database,
        ).strip()
    )
    if tables == 0:
        raise HostError(f"the restored database {database} has no tables")
    has_migrations = pg.psql("SELECT to_regclass('public.schema_migrations') IS NOT NULL", database)
    if has_migrations.strip() != "t":
        raise HostError("the restored database has no schema_migrations table")
    rows = pg.psql("SELECT version, dirty FROM schema_migrations", database).split()
    if len(rows) != 1:
        raise HostError(f"schema_migrations has {len(rows)} rows; golang-migrate keeps one")
    version, dirty = rows[0].split("|")
    if dirty != "f":
        raise HostError(f"schema_migrations is dirty at version {version}: a failed migration")
    size = pg.psql(f"SELECT pg_size_pretty(pg_database_size('{database}'))", database).strip()
    return [f"{tables} tables", f"migration version {version} (clean)", f"size {size}"]


def do_drill(ctx: Context, max_age_hours: float) -> None:
    config, pg = ctx.config, ctx.postgres
    for leftover in leftover_drill_databases(config.database, pg.database_names()):
        step(f"dropping {leftover}, left by a drill that was killed")
        pg.psql(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)')
    scratch = drill_database(config.database, now_utc())
    step(f"restore drill into scratch database {scratch}")
    try:
        manifest = restore_into(ctx, "latest", scratch, None)
        created = parse_iso(manifest["created_at"])
        age_hours = (now_utc() - created).total_seconds() / 3600
        if age_hours > max_age_hours:
            raise HostError(
                f"the latest backup is {age_hours:.1f}h old (limit {max_age_hours:g}h): the"
                " daily backup is not running"
            )
        step("sanity checks")
        report = sanity_checks(pg, scratch)
        say("   drill passed: " + "; ".join([f"backup of {manifest['created_at']}", *report]))
    finally:
        step(f"dropping {scratch}")
        try:
            pg.psql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        except HostError as exc:
            say(f"warning: could not drop {scratch}: {exc}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clipper-backup", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup", help="dump the app database and upload it")
    listing = commands.add_parser("list", help="complete backups, oldest first")
    listing.add_argument("--json", action="store_true")
    restore = commands.add_parser("restore", help="restore a backup into a database")
    restore.add_argument("--from", dest="source", required=True, help="an object key or latest")
    restore.add_argument("--target-db", required=True)
    restore.add_argument("--role", help="own what is restored as this role (SET ROLE)")
    restore.add_argument("--i-know-this-overwrites-production", action="store_true")
    drill = commands.add_parser("drill", help="restore the latest into a scratch db and check")
    drill.add_argument("--max-age-hours", type=float, default=48.0)
    return parser.parse_args(argv)


def print_list(ctx: Context, as_json: bool) -> None:
    """`list`: the complete backups, oldest first, as JSON or one line each."""
    rows = do_list(ctx)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['stamp']}  {row['key']}")
    print(f"{len(rows)} complete backup(s) in {ctx.config.bucket}/{ctx.config.prefix}")


def run_locked(ctx: Context, args: argparse.Namespace) -> None:
    """The commands that change something (backup, restore, drill), run under the host lock."""
    if args.command == "backup":
        do_backup(ctx)
    elif args.command == "restore":
        do_restore(
            ctx,
            args.source,
            args.target_db,
            args.role,
            args.i_know_this_overwrites_production,
        )
    else:
        do_drill(ctx, args.max_age_hours)
        update_metrics(
            ctx.config.metrics_file,
            {"clipper_backup_drill_last_success_timestamp_seconds": time.time()},
        )


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    failure_metric = {
        "backup": "clipper_backup_last_failure_timestamp_seconds",
        "drill": "clipper_backup_drill_last_failure_timestamp_seconds",
    }.get(args.command)
    config: Config | None = None
    try:
        config = Config.load(Path(args.config))
        ctx = open_context(config)
        if args.command == "list":
            print_list(ctx, as_json=args.json)
            return EXIT_OK
        signal.signal(signal.SIGTERM, _on_sigterm)
        with host_lock(config.state_dir, "clipper-backup " + " ".join(argv)):
            run_locked(ctx, args)
        return EXIT_OK
    except LockHeldError as exc:
        say(f"refused: {exc}")
        return exc.exit_code
    except ConfigError as exc:
        say(f"error: {exc}")
        if config is not None and failure_metric:
            update_metrics(config.metrics_file, {failure_metric: time.time()})
        return exc.exit_code
    except HostError as exc:
        say(f"FAILED: {exc}")
        if config is not None and failure_metric:
            update_metrics(config.metrics_file, {failure_metric: time.time()})
        return EXIT_FAILED
