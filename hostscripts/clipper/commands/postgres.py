"""psql, pg_dump and pg_restore calls. The login is libpq's PG* variables in the tool's
environment (from a 0600 env file), never an argument."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def psql_script(psql: Sequence[str]) -> list[str]:
    """psql reading SQL from stdin, stopping at the first error."""
    return [*psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]


def psql_query(psql: str, sql: str) -> list[str]:
    """One query, unaligned tuples only (`-At`), stopping at an error. `sql` holds no secret."""
    return [psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]


def tool_version(tool: str) -> list[str]:
    return [tool, "--version"]


def dump(pg_dump: str, target: Path) -> list[str]:
    return [pg_dump, "--format=custom", "--compress=6", f"--file={target}"]


def archive_list(pg_restore: str, archive: Path) -> list[str]:
    return [pg_restore, "--list", str(archive)]


def restore(
    pg_restore: str,
    archive: Path,
    database: str,
    *,
    whole: bool,
    role: str | None = None,
    use_list: Path | None = None,
) -> list[str]:
    """pg_restore without owners, stopping at the first error; `whole`: drop what exists first
    and do all of it in one transaction (a failed restore leaves the target as it was)."""
    argv = [pg_restore, "--no-owner", "--exit-on-error", f"--dbname={database}"]
    if whole:
        argv += ["--clean", "--if-exists", "--single-transaction"]
    if role:
        argv.append(f"--role={role}")
    if use_list is not None:
        argv.append(f"--use-list={use_list}")
    return [*argv, str(archive)]
