"""Stand-in for golang-migrate's CLI (migrate/migrate v4) with a PostgreSQL database.

Same command line: `migrate -path DIR -database postgres://USER@HOST:PORT/DB?sslmode=... up [N]`
(also `version` and `force V`); the password comes from PGPASSWORD, which lib/pq (golang-migrate's
postgres driver) reads too. Same bookkeeping: a `schema_migrations(version bigint, dirty
boolean)` table holding one row; a migration is marked dirty before it runs and clean after;
a failed migration leaves the row dirty at its version and exits 1 with the SQL error, and the
next `up` refuses with "Dirty database version N. Fix and force version." Each file runs as one
multi-statement query, so PostgreSQL applies all of it or none (as with lib/pq).
"""

from __future__ import annotations

import re
import sys
import time
import zlib
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]

FILE_RE = re.compile(r"^([0-9]+)_(.*)\.(down|up)\.(.*)$")  # golang-migrate's source/parse.go
USAGE = "usage: migrate -path DIR -database URL up [N] | version | force V"


def fail(message: str, code: int = 1) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_args(argv: list[str]) -> tuple[str, str, list[str]]:
    path = database = ""
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.lstrip("-") in ("path", "source", "database") and arg.startswith("-"):
            if index + 1 >= len(argv):
                fail(f"flag needs an argument: {arg}\n{USAGE}", 2)
            value = argv[index + 1]
            if arg.lstrip("-") == "database":
                database = value
            else:
                path = value.removeprefix("file://")
            index += 2
            continue
        if arg in ("-verbose", "--verbose"):
            index += 1
            continue
        rest.append(arg)
        index += 1
    if not path or not database or not rest:
        fail(USAGE, 2)
    return path, database, rest


def up_files(path: str) -> list[tuple[int, str, Path]]:
    found: dict[int, tuple[int, str, Path]] = {}
    directory = Path(path)
    if not directory.is_dir():
        fail(f"open {path}: no such file or directory")
    for entry in sorted(directory.iterdir()):
        match = FILE_RE.match(entry.name)
        if not match or match.group(3) != "up":
            continue
        version = int(match.group(1))
        if version in found:
            fail(f"duplicate migration file: {entry.name}")
        found[version] = (version, match.group(2), entry)
    return [found[v] for v in sorted(found)]


def set_version(cur: psycopg2.extensions.cursor, version: int, dirty: bool) -> None:
    cur.execute("BEGIN")
    cur.execute("TRUNCATE schema_migrations")
    if version >= 0 or dirty:  # `force -1` (no migration applied) leaves the table empty
        cur.execute(
            "INSERT INTO schema_migrations (version, dirty) VALUES (%s, %s)", (version, dirty)
        )
    cur.execute("COMMIT")


def open_locked(database: str) -> psycopg2.extensions.cursor:
    """A cursor on the database, holding golang-migrate's advisory lock, with its table there."""
    try:
        conn = psycopg2.connect(database, connect_timeout=15)  # libpq reads PGPASSWORD
    except psycopg2.Error as exc:
        fail(f"failed to open database: {str(exc).strip()}")
    conn.autocommit = True
    cur = conn.cursor()
    # golang-migrate serialises concurrent runs with an advisory lock keyed on the database.
    cur.execute("SELECT current_database()")
    lock_id = zlib.crc32(cur.fetchone()[0].encode()) * 1486364155 % (2**63)
    cur.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY,"
        " dirty boolean NOT NULL)"
    )
    return cur


def main(argv: list[str]) -> None:
    path, database, command = parse_args(argv)
    if not database.startswith(("postgres://", "postgresql://")):
        fail(f"unknown driver in {database.split(':', 1)[0]!r} (only postgres here)")
    cur = open_locked(database)
    cur.execute("SELECT version, dirty FROM schema_migrations LIMIT 1")
    row = cur.fetchone()
    current, dirty = (row[0], row[1]) if row else (None, False)

    if command[0] == "version":
        if current is None:
            fail("no migration")
        print(f"{current}{' (dirty)' if dirty else ''}", file=sys.stderr)
        return
    if command[0] == "force":
        set_version(cur, int(command[1]), False)
        return
    if command[0] != "up":
        fail(f"unknown command {command[0]!r}\n{USAGE}", 2)
    if dirty:
        fail(f"Dirty database version {current}. Fix and force version.")
    pending = [m for m in up_files(path) if current is None or m[0] > current]
    if len(command) > 1:
        pending = pending[: int(command[1])]
    if not pending:
        print("no change", file=sys.stderr, flush=True)
        return
    for version, name, file in pending:
        apply_one(cur, version, name, file)


def apply_one(cur: psycopg2.extensions.cursor, version: int, name: str, file: Path) -> None:
    """One migration file: dirty at its version, its SQL as one query, then clean."""
    started = time.monotonic()
    set_version(cur, version, True)
    sql = file.read_text()
    if sql.strip():
        try:
            cur.execute(sql)
        except psycopg2.Error as exc:
            detail = str(exc).strip().splitlines()[0]
            statement = sql.strip()[:200]
            fail(f"migration failed: {detail} in line 0: {statement} (details: pq: {detail})")
    set_version(cur, version, False)
    millis = (time.monotonic() - started) * 1000
    print(f"{version}/u {name} ({millis:.1f}ms)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
