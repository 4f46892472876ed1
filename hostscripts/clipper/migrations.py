"""How migrations reach the database, as pure functions: the admin's setup SQL, golang-migrate's
login (the cluster directly, as the app user, with bounded lock waits), and its answers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from .errors import ConfigError, HostError


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier in double quotes (an inner `"` doubled), for a name read from a
    file: whatever it holds stays one identifier."""
    if not name or "\x00" in name:
        raise ConfigError("a database role name is empty or holds a NUL character")
    return '"' + name.replace('"', '""') + '"'


def database_setup_sql(extensions: Sequence[str], app_user: str) -> str:
    """What the admin runs before the migrations, idempotently: the extensions the app's
    migrations need (only the admin may create them on a managed cluster), then the app user's
    right to create in schema public, which PostgreSQL 15+ gives only to the database's owner
    (the admin, on DigitalOcean), so that the app's migrations can create its tables."""
    lines = [f'CREATE EXTENSION IF NOT EXISTS "{name}";' for name in extensions]
    lines.append(f"GRANT CREATE, USAGE ON SCHEMA public TO {quote_ident(app_user)};")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class MigrateLogin:
    """How golang-migrate reaches the database: `url` (no password in it) and the password,
    which travels in PGPASSWORD only."""

    url: str
    password: str

    @property
    def target(self) -> str:
        """`user@host:port/database`, for the operator (the URL holds no secret)."""
        return self.url.split("://", 1)[1].split("?", 1)[0]


def migrate_login(env: Mapping[str, str], admin: Mapping[str, str]) -> MigrateLogin:
    """golang-migrate's login: the cluster DIRECTLY (the admin env's PGHOST, PGPORT, PGDATABASE
    and PGSSLMODE), never the backend's DB_HOST/DB_PORT, which may be PgBouncer: golang-migrate
    holds a session advisory lock and runs DDL, which must not go through a pool (and a pool's
    DB_NAME is the pool's name, not the database's). It logs in as the app's user (DB_USER,
    DB_PASSWORD), so what the migrations create is owned by the app."""
    if not env.get("DB_USER"):
        raise ConfigError("the backend env file lacks DB_USER")
    missing = [key for key in ("PGHOST", "PGDATABASE") if not admin.get(key)]
    if missing:
        raise ConfigError(f"the admin env file lacks {', '.join(missing)}")
    host = admin["PGHOST"]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = admin.get("PGPORT") or "5432"
    sslmode = quote(admin.get("PGSSLMODE") or env.get("DB_SSLMODE") or "require", safe="")
    user, database = quote(env["DB_USER"], safe=""), quote(admin["PGDATABASE"], safe="")
    return MigrateLogin(
        url=f"postgres://{user}@{host}:{port}/{database}?sslmode={sslmode}",
        password=env.get("DB_PASSWORD", ""),
    )


_MIGRATION_FILE = re.compile(r"^([0-9]+)_(.*)\.(down|up)\.(.*)$")  # golang-migrate's own


def newest_migration(names: Iterator[str] | Sequence[str]) -> int:
    """The highest version among golang-migrate file names (0 when there are none)."""
    versions = [int(m.group(1)) for name in names if (m := _MIGRATION_FILE.match(name))]
    return max(versions, default=0)


def parse_migrate_version(output: str) -> tuple[int | None, bool]:
    """`migrate version` prints `N` or `N (dirty)`, or `error: no migration` on a new database."""
    match = re.search(r"^(\d+)( \(dirty\))?\s*$", output, re.MULTILINE)
    if match:
        return int(match.group(1)), bool(match.group(2))
    if "no migration" in output:
        return None, False
    raise HostError(f"cannot read the schema version from golang-migrate:\n{output.strip()}")


# A migration waits at most this long for a lock, then fails alone: the site's queries queue
# behind an ALTER TABLE that waits for, say, a long read only that long (design.md). Short
# queries let go of their locks in milliseconds, so a second is plenty unless something holds
# one for long; then the deploy retries a few times (release_steps.LOCK_ATTEMPTS) and gives up.
# The statement bound keeps one runaway migration from holding its locks for ever.
LOCK_TIMEOUT = "1s"
STATEMENT_TIMEOUT = "15min"


def migrate_environment(login: MigrateLogin) -> dict[str, str]:
    """golang-migrate's environment: the password, and the session's bounds as libpq/lib/pq
    PGOPTIONS (both read it; a URL parameter would mean different things to each)."""
    return {
        "PGPASSWORD": login.password,
        "PGOPTIONS": f"-c lock_timeout={LOCK_TIMEOUT} -c statement_timeout={STATEMENT_TIMEOUT}",
    }


def migration_failure_advice(output: str, *, ran_sql: bool = True) -> str:
    """What the operator should do after golang-migrate failed, from its words. Only a failure
    inside a migration's SQL (`ran_sql`) is repaired with migrate-force: a login or a lock wait
    changed nothing."""
    text = output.lower()
    if "password authentication failed" in text or "no pg_hba.conf entry" in text:
        return (
            "golang-migrate could not log in (wrong DB_USER/DB_PASSWORD in the backend env file,"
            " or the role is missing): nothing was migrated; fix the login and deploy again"
        )
    if "failed to open database" in text or "connection refused" in text:
        return (
            "golang-migrate could not reach the database: nothing was migrated; check the"
            " cluster's direct address in the admin env file and the firewall, then deploy again"
        )
    if "lock timeout" in text:
        return (
            f"a migration waited more than {LOCK_TIMEOUT} for a table lock another session holds"
            " (a long query or transaction): it gave up so that the site's queries would not"
            " queue behind it, and its transaction was rolled back. Deploy again when that"
            " session is done (pg_stat_activity shows it)"
        )
    if "statement timeout" in text:
        return (
            f"a migration ran longer than {STATEMENT_TIMEOUT} and was cancelled (its"
            " transaction rolled back): split it or run it by hand, then deploy again"
        )
    if not ran_sql:
        return "golang-migrate ran no migration: see its words above; nothing to repair"
    return (
        "golang-migrate marks the schema dirty at the failed version: repair what the"
        " migration left, then `clipper-release migrate-force <last good version>`"
        " before deploying a fixed release"
    )


def rolled_back_cleanly(output: str) -> bool:
    """A lock or statement timeout cancels the migration's one transaction: nothing of it was
    applied, so golang-migrate's dirty mark can be cleared back to the previous version."""
    text = output.lower()
    return "lock timeout" in text or "statement timeout" in text
