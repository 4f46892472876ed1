"""The bucket (rclone) and the database (psql, pg_dump, pg_restore) as clipper-backup uses
them: thin, each call built by `commands` and run by `runner`. Logins come from 0600 env files
and reach each tool only through its environment."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .backup_config import Config
from .commands import postgres as pg
from .commands import rclone
from .errors import HostError
from .runner import run

PG_LOGIN_KEYS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGSSLMODE")
# pg_restore --list lines of an extension and its comment (both need the admin).
_EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (EXTENSION |COMMENT - EXTENSION )")


def base_env() -> dict[str, str]:
    # Only what the tools need: nothing inherited can redirect them (AWS_*, RCLONE_*, PG*).
    return {
        "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }


def _out(argv: list[str], env: Mapping[str, str], what: str) -> str:
    return run(argv, env=env, what=what, timeout=None).stdout


def rclone_env(config: Config, credentials: Mapping[str, str]) -> dict[str, str]:
    """rclone's whole configuration, in its environment: the remote and the key."""
    remote = f"RCLONE_CONFIG_{rclone.REMOTE.upper()}_"
    return {
        **base_env(),
        "HOME": str(config.work_dir),
        "RCLONE_CONFIG": "/dev/null",
        remote + "TYPE": "s3",
        # "Other" with path-style requests: Spaces accepts them, and so does any S3 test
        # server on loopback, so the tested configuration is the deployed one.
        remote + "PROVIDER": "Other",
        remote + "ENDPOINT": config.endpoint,
        remote + "REGION": config.region,
        remote + "FORCE_PATH_STYLE": "true",
        remote + "ACL": "private",
        # The key may touch only this bucket: never try to create it.
        remote + "NO_CHECK_BUCKET": "true",
        remote + "ACCESS_KEY_ID": credentials["SPACES_ACCESS_KEY_ID"],
        remote + "SECRET_ACCESS_KEY": credentials["SPACES_SECRET_ACCESS_KEY"],
    }


class Spaces:
    """The bucket through rclone."""

    def __init__(self, config: Config, credentials: Mapping[str, str]) -> None:
        self.bucket = config.bucket
        self.env = rclone_env(config, credentials)

    def _path(self, key: str) -> str:
        return rclone.remote_path(self.bucket, key)

    def upload(self, local: Path, key: str) -> None:
        _out(rclone.copy_to(str(local), self._path(key)), self.env, f"upload of {key}")

    def download(self, key: str, local: Path) -> None:
        _out(rclone.copy_to(self._path(key), str(local)), self.env, f"download of {key}")

    def read(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory(dir=self.env["HOME"]) as tmp:
            target = Path(tmp) / "object"
            self.download(key, target)
            return target.read_bytes()

    def size_of(self, key: str) -> int | None:
        """The object's size, or None when the bucket does not list it."""
        out = _out(rclone.stat(self._path(key)), self.env, f"listing of {key}")
        entry = json.loads(out or "null")
        if not isinstance(entry, dict) or entry.get("IsDir", True):
            return None  # S3 has no directories: a missing key stats as one
        return int(entry["Size"])

    def list_keys(self, prefix: str) -> list[str]:
        out = _out(rclone.list_files(self._path(prefix)), self.env, f"listing of {prefix}/")
        return sorted(f"{prefix}/{entry['Path']}" for entry in json.loads(out or "[]"))

    def delete(self, key: str) -> None:
        _out(rclone.delete(self._path(key)), self.env, f"delete of {key}")


def newest_pg_bin_dir() -> Path | None:
    """Debian/Ubuntu install each client version under /usr/lib/postgresql/<major>/bin."""
    found: list[tuple[int, Path]] = []
    for path in Path("/usr/lib/postgresql").glob("*/bin/pg_dump"):
        with contextlib.suppress(ValueError):
            found.append((int(path.parent.parent.name), path.parent))
    return max(found)[1] if found else None


class Postgres:
    """pg_dump/pg_restore/psql with the admin login from its 0600 env file."""

    def __init__(self, config: Config, login: Mapping[str, str]) -> None:
        self.database = config.database
        self.bin_dir = config.pg_bin_dir or newest_pg_bin_dir()
        self.env = {
            **base_env(),
            **{key: login[key] for key in PG_LOGIN_KEYS if key in login},
            "PGCONNECT_TIMEOUT": "15",
            "PGAPPNAME": "clipper-backup",
        }

    def tool(self, name: str) -> str:
        if self.bin_dir is not None and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        found = shutil.which(name, path=self.env["PATH"])
        if found is None:
            raise HostError(f"{name} is not installed (package postgresql-client)")
        return found

    def psql(self, sql: str, database: str | None = None) -> str:
        db = database or self.database
        return _out(pg.psql_query(self.tool("psql"), sql), {**self.env, "PGDATABASE": db},
                    f"psql on {db}")  # fmt: skip

    def server_major(self) -> int:
        return int(self.psql("SHOW server_version_num").strip()) // 10000

    def database_bytes(self) -> int:
        return int(self.psql(f"SELECT pg_database_size('{self.database}')").strip())

    def tool_version(self, name: str) -> tuple[int, str]:
        out = _out(pg.tool_version(self.tool(name)), self.env, f"{name} --version").strip()
        match = re.search(r"(\d+)(\.\d+)*", out)
        if not match:
            raise HostError(f"cannot read the version of {name}: {out!r}")
        return int(match[1]), match[0]

    def dump(self, target: Path) -> None:
        _out(pg.dump(self.tool("pg_dump"), target), {**self.env, "PGDATABASE": self.database},
             f"pg_dump of {self.database}")  # fmt: skip

    def archive_lines(self, dump: Path) -> list[str]:
        out = _out(pg.archive_list(self.tool("pg_restore"), dump), self.env, "pg_restore --list")
        return [line for line in out.splitlines() if line and not line.startswith(";")]

    def archive_entries(self, dump: Path) -> int:
        """Read the archive's table of contents back: a truncated file fails here."""
        return len(self.archive_lines(dump))

    def restore(self, dump: Path, database: str, role: str | None) -> None:
        """pg_restore --no-owner --clean --if-exists, all or nothing.

        With `role`, what is restored is created by (so owned by) that role, as the app's own
        migrations would have: extensions need the admin, so they are restored first as the
        admin, then everything else with SET ROLE (the role gets CREATE on schema public).
        """
        tool = self.tool("pg_restore")
        env = {**self.env, "PGDATABASE": database}
        what = f"pg_restore into {database}"
        if not role:
            _out(pg.restore(tool, dump, database, whole=True), env, what)
            return
        entries = self.archive_lines(dump)
        admin = [line for line in entries if _EXTENSION_ENTRY.match(line)]
        rest = [line for line in entries if not _EXTENSION_ENTRY.match(line)]
        with tempfile.TemporaryDirectory(dir=dump.parent) as tmp:
            admin_list, rest_list = Path(tmp) / "extensions.list", Path(tmp) / "rest.list"
            admin_list.write_text("\n".join(admin) + "\n")
            rest_list.write_text("\n".join(rest) + "\n")
            if admin:
                argv = pg.restore(tool, dump, database, whole=False, use_list=admin_list)
                _out(argv, env, what + " (extensions)")
            self.psql(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"', database)
            argv = pg.restore(tool, dump, database, whole=True, role=role, use_list=rest_list)
            _out(argv, env, what + f" as {role}")

    def database_exists(self, name: str) -> bool:
        found = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608
        return found.strip() == "1"

    def database_names(self) -> list[str]:
        return self.psql("SELECT datname FROM pg_database").split()
