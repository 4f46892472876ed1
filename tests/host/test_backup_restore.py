"""clipper-backup for real: PostgreSQL 17 on loopback with pg_dump, pg_restore and psql 17 (as
on a droplet, whose backup setup installs postgresql-client-17), an S3 API on loopback
(moto_server, the Spaces stand-in) and Debian's rclone, driven through the script's command line
exactly as the systemd units run it, with the config the Pulumi side renders (paths moved under
a temp dir).

The bucket's retention is its lifecycle rule, asserted under mocks in tests/unit/test_backups.py;
moto does not expire objects, so nothing here pretends it does.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from components.renderers.backup_units import BackupTarget, render_backup_config
from tests.support import DockerEngine, PostgresClients, PostgresServer, free_port
from tests.support.procs import stop_pid, wait_for_port
from tests.support.release_host import hold_host_lock

# CLIPPER_TEST_BACKUP_SCRIPT runs the tests against another build of the script (to see a test
# fail against the code from before its fix); unset, the repository's launcher.
SCRIPT = Path(
    os.environ.get("CLIPPER_TEST_BACKUP_SCRIPT")
    or Path(__file__).resolve().parents[2] / "hostscripts" / "clipper-backup"
)
REAL_RCLONE = "/usr/bin/rclone"
ACCESS_KEY = "DO00TESTACCESSKEY"
SECRET_KEY = "test-spaces-secret-do-not-leak-4f1c"

pytestmark = pytest.mark.slow

# A shim in front of rclone: logs every command line (to prove no secret is on one) and fails
# any call whose arguments match the pattern in `fail-on` (to break one upload on purpose).
RCLONE_SHIM = f"""#!/bin/bash
here=$(dirname "$0")
printf '%s\\n' "$*" >> "$here/argv.log"
if [[ -s "$here/fail-on" ]] && [[ "$*" == *"$(cat "$here/fail-on")"* ]]; then
  echo "shim: failing on purpose" >&2; exit 1
fi
exec {REAL_RCLONE} "$@"
"""


@dataclass
class S3Server:
    port: int
    pid: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    moto = Path(sys.executable).parent / "moto_server"
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        assert wait_for_port("127.0.0.1", port, timeout=30), log.read_text()
        yield S3Server(port, proc.pid)
    finally:
        stop_pid(proc.pid, timeout=10)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pg17_bin(
    docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The dir of psql, pg_dump and pg_restore 17 (TEST SHIMs: see PostgresClients) that each
    site's config names as `pg_bin_dir`; every test's tmp_path is under the mounted root."""
    with PostgresClients(docker_engine, tmp_path_factory.getbasetemp()) as clients:
        yield clients.bin_dir


@dataclass
class BackupSite:
    """One app database, one bucket, and clipper-backup's config and files under a temp dir."""

    root: Path
    config_path: Path
    config: dict[str, Any]
    database: str
    bucket: str
    pg: PostgresServer
    s3: Any
    shim_dir: Path
    pg_bin: Path  # psql, pg_dump and pg_restore 17

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            # Whatever the caller's environment holds must not matter (the script cleans it).
            **os.environ,
            "PATH": f"{self.shim_dir}:/usr/local/bin:/usr/bin:/bin",
        }
        return subprocess.run(
            ["/usr/bin/python3", str(SCRIPT), "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def sql(self, query: str, database: str | None = None) -> str:
        return self.pg.psql(query, database or self.database).strip()

    def object_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def manifests(self) -> list[dict[str, Any]]:
        return [json.loads(self.get(k)) for k in self.object_keys() if k.endswith(".json")]

    def metrics(self) -> dict[str, float]:
        path = Path(self.config["metrics_file"])
        return {
            line.split()[0]: float(line.split()[1])
            for line in path.read_text().splitlines()
            if line and not line.startswith("#")
        }


APP_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO schema_migrations VALUES (2, false);
CREATE TABLE clips (
  id bigserial PRIMARY KEY,
  token text NOT NULL DEFAULT encode(gen_random_bytes(8), 'hex'),
  title text NOT NULL,
  views integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clips_title ON clips (title);
INSERT INTO clips (title, views)
  SELECT 'clip ' || n || E' \\u00e9 "quoted", tab\\t', n * 7 FROM generate_series(1, 2000) n;
CREATE TABLE clip_views (clip_id bigint REFERENCES clips (id), viewer text);
INSERT INTO clip_views SELECT id, 'viewer-' || id FROM clips WHERE id % 3 = 0;
"""


def fingerprint(site: BackupSite, database: str) -> tuple[str, str, str]:
    """Row counts and a checksum of every row of the app's tables."""
    return (
        site.sql("SELECT count(*) FROM clips", database),
        site.sql("SELECT count(*) FROM clip_views", database),
        site.sql(
            "SELECT md5(string_agg(c::text, '|' ORDER BY id)) FROM clips c",
            database,
        ),
    )


@pytest.fixture
def site(
    postgres_server: PostgresServer, s3_server: S3Server, pg17_bin: Path, tmp_path: Path
) -> Iterator[BackupSite]:
    suffix = uuid.uuid4().hex[:8]
    database, bucket = f"clipper_{suffix}", f"clipper-test-{suffix}-backups"
    postgres_server.create_database(database)
    postgres_server.psql(APP_SCHEMA, database)

    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    etc = tmp_path / "etc"
    etc.mkdir()
    admin_env = etc / "db-admin.env"
    admin_env.write_text(
        "# test admin login\n"
        f"PGHOST={postgres_server.host}\nPGPORT={postgres_server.port}\n"
        f"PGUSER={postgres_server.admin_user}\nPGPASSWORD={postgres_server.admin_password}\n"
        f"PGDATABASE={database}\nPGSSLMODE=disable\n"
    )
    credentials = etc / "backup.env"
    credentials.write_text(
        f'SPACES_ACCESS_KEY_ID={ACCESS_KEY}\nSPACES_SECRET_ACCESS_KEY="{SECRET_KEY}"\n'
    )
    for secret in (admin_env, credentials):
        secret.chmod(0o600)
    deploy_json = etc / "deploy.json"
    deploy_json.write_text('{"schema": 1, "images": {}}\n')
    nginx_site = etc / "clipper.conf"
    nginx_site.write_text("server { listen 80; }\n")
    releases = tmp_path / "releases.json"
    releases.write_text(
        json.dumps(
            {
                "schema": 1,
                "active": "r2",
                "releases": [
                    {"id": "r1", "images": {"backend": "b:1"}, "color": "blue"},
                    {"id": "r2", "images": {"backend": "b:2"}, "color": "green"},
                ],
            }
        )
    )

    # The config the Pulumi side renders, with its host paths moved under the temp dir.
    config = json.loads(render_backup_config(BackupTarget("staging", database, bucket, "nyc3")))
    config.update(
        db_admin_env_file=str(admin_env),
        credentials_file=str(credentials),
        endpoint=s3_server.endpoint,
        work_dir=str(tmp_path / "work"),
        metrics_file=str(tmp_path / "textfile" / "clipper_backup.prom"),
        releases_file=str(releases),
        pg_bin_dir=str(pg17_bin),
        config_files=[str(deploy_json), str(nginx_site), str(tmp_path / "absent.conf")],
    )
    config_path = etc / "backup.json"
    config_path.write_text(json.dumps(config))

    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "rclone"
    shim.write_text(RCLONE_SHIM)
    shim.chmod(0o755)
    yield BackupSite(
        tmp_path, config_path, config, database, bucket, postgres_server, s3, shim_dir, pg17_bin
    )
    for name in postgres_server.psql(
        f"SELECT datname FROM pg_database WHERE datname LIKE '{database}%'"  # noqa: S608
    ).split():
        postgres_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------- backup and restore


def test_a_backup_is_listed_and_restores_into_a_new_database_with_equal_data(
    site: BackupSite,
) -> None:
    out = site.ok("backup")
    assert "backup complete" in out
    listing = json.loads(site.ok("list", "--json"))
    assert len(listing) == 1
    (dump_key,) = [k for k in site.object_keys() if k.endswith(".dump")]
    assert listing[0]["key"] == dump_key
    assert dump_key.startswith("staging/postgres/")

    target = f"{site.database}_restored"
    site.ok("restore", "--from", "latest", "--target-db", target)
    assert fingerprint(site, target) == fingerprint(site, site.database)
    assert site.sql("SELECT extname FROM pg_extension WHERE extname = 'pgcrypto'", target)
    assert site.sql("SELECT dirty FROM schema_migrations", target) == "f"


def test_a_named_backup_restores_that_backup_not_the_latest(site: BackupSite) -> None:
    site.ok("backup")
    before = fingerprint(site, site.database)
    first = json.loads(site.ok("list", "--json"))[0]["key"]
    site.sql("DELETE FROM clip_views; DELETE FROM clips WHERE id > 100")
    site.ok("backup")
    assert len(json.loads(site.ok("list", "--json"))) == 2

    target = f"{site.database}_first"
    site.ok("restore", "--from", first, "--target-db", target)
    assert fingerprint(site, target) == before


def test_the_manifest_records_size_sha256_versions_and_the_active_release(
    site: BackupSite,
) -> None:
    site.ok("backup")
    (manifest,) = site.manifests()
    dump = site.get(manifest["dump"]["key"])
    assert manifest["dump"]["size"] == len(dump)
    assert manifest["dump"]["sha256"] == hashlib.sha256(dump).hexdigest()
    assert manifest["server_major"] == 17
    assert manifest["pg_dump_version"].startswith("17.")
    # The archive's own header: made by pg_dump 17 (15 cannot dump a 17 server at all).
    archive = site.root / "downloaded.dump"
    archive.write_bytes(dump)
    header = subprocess.run(
        [str(site.pg_bin / "pg_restore"), "--list", str(archive)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Dumped by pg_dump version: 17." in header, header
    assert "Dumped from database version: 17." in header, header
    assert manifest["release"] == {"id": "r2", "images": {"backend": "b:2"}, "color": "green"}
    assert manifest["environment"] == "staging"


def test_the_host_config_is_archived_beside_the_dump_without_any_env_file(
    site: BackupSite, tmp_path: Path
) -> None:
    site.ok("backup")
    (manifest,) = site.manifests()
    archive = tmp_path / "config.tar.gz"
    archive.write_bytes(site.get(manifest["config"]["key"]))
    names = subprocess.run(
        ["tar", "-tzf", str(archive)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(names) == sorted(p.lstrip("/") for p in site.config["config_files"][:2])
    assert not [n for n in names if n.endswith(".env")]


def test_a_secret_file_in_the_config_list_stops_the_backup(site: BackupSite) -> None:
    site.config["config_files"].append(site.config["credentials_file"])
    site.config_path.write_text(json.dumps(site.config))
    proc = site.run("backup")
    assert proc.returncode == 1
    assert "refusing to back up" in proc.stdout
    assert site.object_keys() == []


def test_no_secret_reaches_a_command_line_or_the_output(site: BackupSite) -> None:
    site.ok("backup")
    site.ok("restore", "--from", "latest", "--target-db", f"{site.database}_copy")
    argv_log = (site.shim_dir / "argv.log").read_text()
    output = site.ok("list")
    for secret in (SECRET_KEY, site.pg.admin_password):
        assert secret not in argv_log
        assert secret not in output


# ---------------------------------------------------------------------------- refusals


def test_a_corrupted_dump_is_refused_by_its_sha256(site: BackupSite) -> None:
    site.ok("backup")
    (manifest,) = site.manifests()
    dump = bytearray(site.get(manifest["dump"]["key"]))
    dump[len(dump) // 2] ^= 0xFF
    site.put(manifest["dump"]["key"], bytes(dump))

    target = f"{site.database}_corrupt"
    proc = site.run("restore", "--from", "latest", "--target-db", target)
    assert proc.returncode == 1
    assert "does not match its manifest" in proc.stdout
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{target}'"  # noqa: S608
    assert site.sql(exists) == "0"


def test_the_live_database_is_overwritten_only_with_the_explicit_flag(site: BackupSite) -> None:
    site.ok("backup")
    before = fingerprint(site, site.database)
    site.sql("INSERT INTO clips (title, views) VALUES ('after the backup', 1)")

    refused = site.run("restore", "--from", "latest", "--target-db", site.database)
    assert refused.returncode == 2
    assert "--i-know-this-overwrites-production" in refused.stdout
    assert site.sql("SELECT count(*) FROM clips WHERE title = 'after the backup'") == "1"

    site.ok(
        "restore", "--from", "latest", "--target-db", site.database,
        "--i-know-this-overwrites-production",
    )  # fmt: skip
    assert fingerprint(site, site.database) == before


def test_an_unknown_backup_key_is_refused(site: BackupSite) -> None:
    site.ok("backup")
    proc = site.run(
        "restore", "--from", "staging/postgres/2020/01/01/20200101T000000Z.dump",
        "--target-db", f"{site.database}_x",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "is not a complete backup" in proc.stdout


def test_a_second_run_is_refused_while_one_holds_the_lock(site: BackupSite) -> None:
    # The host lock is clipper-release's too (its state dir: where releases.json lives).
    state = Path(site.config["releases_file"]).parent
    holder = {"pid": os.getpid(), "command": "clipper-backup backup", "started_at": "x"}
    with hold_host_lock(state, holder):
        proc = site.run("backup")
        drill = site.run("drill")
    assert proc.returncode == 75, proc.stdout
    assert drill.returncode == 75
    assert f"pid {os.getpid()}" in proc.stdout
    assert site.object_keys() == []
    site.ok("backup")  # the lock went with its holder


def test_a_backup_refuses_while_a_deploy_holds_the_host_lock_and_says_so(site: BackupSite) -> None:
    """One lock for deploy, rollback, backup and drill: pg_dump never holds its locks while a
    migration runs (and the other way round)."""
    holder = {"pid": os.getpid(), "command": "clipper-release deploy", "host": "app-1",
              "user": "deploy", "started_at": "2026-12-02T03:00:00Z"}  # fmt: skip
    with hold_host_lock(Path(site.config["releases_file"]).parent, holder):
        proc = site.run("backup")
    assert proc.returncode == 75, proc.stdout
    assert "another deploy is running on app-1: 'clipper-release deploy'" in proc.stdout
    assert "refused, nothing changed" in proc.stdout
    assert site.object_keys() == []


def test_concurrent_backups_never_overlap(site: BackupSite) -> None:
    env = {**os.environ, "PATH": f"{site.shim_dir}:/usr/bin:/bin"}
    command = ["/usr/bin/python3", str(SCRIPT), "--config", str(site.config_path), "backup"]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    codes = sorted(p.wait(timeout=120) for p in procs)
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.close()
    assert codes in ([0, 0], [0, 75])  # the second either waited its turn or was refused
    assert len(site.manifests()) == codes.count(0)


def test_a_failed_manifest_upload_leaves_no_new_latest_and_no_orphans(site: BackupSite) -> None:
    site.ok("backup")
    good = site.object_keys()
    (site.shim_dir / "fail-on").write_text(".json")
    proc = site.run("backup")
    assert proc.returncode == 1
    assert "FAILED: upload of staging/postgres/" in proc.stdout
    assert site.object_keys() == good  # the new dump and config archive were deleted again
    (site.shim_dir / "fail-on").unlink()
    assert len(json.loads(site.ok("list", "--json"))) == 1
    assert site.metrics()["clipper_backup_last_failure_timestamp_seconds"] >= time.time() - 60


# ---------------------------------------------------------------------------- drill and metrics


def _scratch_databases(site: BackupSite) -> list[str]:
    return site.sql(
        f"SELECT datname FROM pg_database WHERE datname LIKE '{site.database}_drill_%'"  # noqa: S608
    ).split()


def test_the_drill_passes_on_a_good_backup_and_drops_its_scratch_database(
    site: BackupSite,
) -> None:
    site.ok("backup")
    out = site.ok("drill")
    assert "drill passed" in out
    assert "3 tables" in out and "migration version 2 (clean)" in out
    assert _scratch_databases(site) == []
    assert site.metrics()["clipper_backup_drill_last_success_timestamp_seconds"] >= (
        time.time() - 60
    )


def test_the_drill_fails_on_a_broken_dump(site: BackupSite) -> None:
    site.ok("backup")
    (manifest,) = site.manifests()
    site.put(manifest["dump"]["key"], site.get(manifest["dump"]["key"])[:-512])
    proc = site.run("drill")
    assert proc.returncode == 1
    assert "does not match its manifest" in proc.stdout
    assert _scratch_databases(site) == []
    assert "clipper_backup_drill_last_failure_timestamp_seconds" in site.metrics()


def test_the_drill_fails_on_a_dirty_migration_state(site: BackupSite) -> None:
    site.sql("UPDATE schema_migrations SET dirty = true")
    site.ok("backup")
    proc = site.run("drill")
    assert proc.returncode == 1
    assert "schema_migrations is dirty at version 2" in proc.stdout
    assert _scratch_databases(site) == []


def test_the_drill_fails_when_there_is_no_backup(site: BackupSite) -> None:
    proc = site.run("drill")
    assert proc.returncode == 1
    assert "no complete backup" in proc.stdout


def test_textfile_metrics_are_written_and_pass_promtool(site: BackupSite) -> None:
    site.ok("backup")
    (manifest,) = site.manifests()
    metrics = site.metrics()
    assert metrics["clipper_backup_last_size_bytes"] == manifest["dump"]["size"]
    assert time.time() - 60 <= metrics["clipper_backup_last_success_timestamp_seconds"]
    assert metrics["clipper_backup_last_success_timestamp_seconds"] <= time.time()
    text = Path(site.config["metrics_file"]).read_text()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    leftovers = [p.name for p in Path(site.config["metrics_file"]).parent.iterdir()]
    assert leftovers == ["clipper_backup.prom"]  # written by rename: no temp file remains


def test_a_credentials_file_others_can_read_is_refused(site: BackupSite) -> None:
    Path(site.config["credentials_file"]).chmod(0o644)
    proc = site.run("backup")
    assert proc.returncode == 2
    assert "it must be 0600" in proc.stdout


def test_a_restore_with_a_role_leaves_the_app_role_owning_what_it_restored(
    site: BackupSite,
) -> None:
    role = f"{site.database}_owner"
    site.pg.create_role(role, login=False)
    try:
        site.ok("backup")
        target = f"{site.database}_owned"
        site.ok("restore", "--from", "latest", "--target-db", target, "--role", role)
        owners = site.sql(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", target
        )
        assert owners == role
        assert fingerprint(site, target) == fingerprint(site, site.database)
        assert site.sql("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'", target)
    finally:
        site.pg.psql(f'DROP DATABASE IF EXISTS "{site.database}_owned" WITH (FORCE)')
        site.pg.psql(f'DROP ROLE IF EXISTS "{role}"')


# ------------------------------------------------------------- killed runs, full disks, clocks

# A pg_dump that writes the whole dump, then stays busy (as a long dump does) until killed.
SLOW_PG_DUMP = """#!/bin/bash
{real} "$@" || exit $?
case "$*" in *--file=*) echo "shim: dump written, still busy" >&2; exec sleep 120;; esac
"""


def _with_config(site: BackupSite, **changes: Any) -> None:
    site.config.update(changes)
    site.config_path.write_text(json.dumps(site.config))


def test_a_backup_stopped_by_sigterm_mid_dump_leaves_no_dump_and_records_a_failure(
    site: BackupSite,
) -> None:
    """systemd's TimeoutStartSec sends SIGTERM: the run ends like a failure, cleanly."""
    shims = site.root / "pg-shim"
    shims.mkdir()
    for tool in ("psql", "pg_restore"):
        (shims / tool).symlink_to(site.pg_bin / tool)
    (shims / "pg_dump").write_text(SLOW_PG_DUMP.format(real=site.pg_bin / "pg_dump"))
    (shims / "pg_dump").chmod(0o755)
    _with_config(site, pg_bin_dir=str(shims))
    env = {**os.environ, "PATH": f"{site.shim_dir}:/usr/bin:/bin"}
    command = ["/usr/bin/python3", str(SCRIPT), "--config", str(site.config_path), "backup"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip
    work = Path(site.config["work_dir"])
    deadline = time.monotonic() + 60
    while not list(work.glob("backup-*/db.dump")):
        assert time.monotonic() < deadline and proc.poll() is None, "the dump never started"
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert "stopped by SIGTERM" in out
    assert list(work.iterdir()) == [], "no dump (or temp dir) is left on disk"
    assert "clipper_backup_last_failure_timestamp_seconds" in site.metrics()
    assert site.object_keys() == []
    _with_config(site, pg_bin_dir=str(site.pg_bin))
    site.ok("backup")  # the lock went with it


def test_a_killed_drills_scratch_database_is_dropped_at_the_next_drill(site: BackupSite) -> None:
    site.ok("backup")
    leftover = f"{site.database}_drill_20261201t031500z"
    site.pg.psql(f'CREATE DATABASE "{leftover}"')
    out = site.ok("drill")
    assert f"dropping {leftover}, left by a drill that was killed" in out
    assert _scratch_databases(site) == []


def test_a_backup_that_would_not_fit_on_disk_is_refused_before_dumping(site: BackupSite) -> None:
    small = site.root / "small-disk"
    small.mkdir()
    # A real 64 KiB filesystem: far smaller than the test database.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        _with_config(site, work_dir=str(small / "work"))
        proc = site.run("backup")
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert proc.returncode == 1, proc.stdout
    assert "not enough free disk space" in proc.stdout and "bytes free" in proc.stdout
    assert "pg_dump --format=custom" not in proc.stdout, "refused before the dump started"
    assert site.object_keys() == []
    assert "clipper_backup_last_failure_timestamp_seconds" in site.metrics()


def test_a_backup_stamped_in_the_future_is_never_the_latest(site: BackupSite) -> None:
    site.ok("backup")
    (manifest,) = site.manifests()
    future = "staging/postgres/2030/01/01/20300101T000000Z"
    site.put(future + ".dump", site.get(manifest["dump"]["key"]))
    forged = {**manifest, "created_at": "2030-01-01T00:00:00Z",
              "dump": {**manifest["dump"], "key": future + ".dump"}}  # fmt: skip
    site.put(future + ".json", json.dumps(forged).encode())
    out = site.ok("drill")
    assert f"backup of {manifest['created_at']}" in out, out
    assert "2030-01-01" not in out
