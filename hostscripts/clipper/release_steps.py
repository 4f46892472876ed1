"""The deploy's steps around the switch: migrations and pruning old releases."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .book import ReleaseBook
from .decisions import images_to_remove, prune_releases
from .errors import HostError
from .host import Host, say
from .migrations import (
    migration_failure_advice,
    newest_migration,
    parse_migrate_version,
    rolled_back_cleanly,
)

# A migration file with its own transaction control or CONCURRENTLY does not run as one
# transaction: after a timeout in it, only a person can tell what was applied.
CLEARED = ". golang-migrate had marked version"
LOCK_ATTEMPTS = 3
LOCK_PAUSE = 3.0  # seconds between attempts: long enough for a short query burst to end
_NOT_ONE_TRANSACTION = re.compile(r"\b(BEGIN|COMMIT|CONCURRENTLY)\b", re.IGNORECASE)


def _up_file(source: Path, version: int) -> Path | None:
    """The `up` file of migration `version` in golang-migrate's naming."""
    return next(
        (p for p in sorted(source.iterdir()) if re.fullmatch(rf"0*{version}_.*\.up\.\w+", p.name)),
        None,
    )


def run_migrations(host: Host, release: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """Bring the schema up to the release's newest migration; return what to report."""
    login = host.migrate_login(env)
    image = release["images"]["migrate"]
    source = host.extract_migrations(release)
    newest = newest_migration(path.name for path in source.iterdir())
    found = host.migrate(image, login, source, "version")
    try:
        current, dirty = parse_migrate_version(found.stdout + found.stderr)
    except HostError as exc:
        advice = migration_failure_advice(found.stdout + found.stderr, ran_sql=False)
        raise HostError(f"{exc}\n  {advice}") from None
    at = "no version yet" if current is None else f"{current}{' (dirty)' if dirty else ''}"
    report = [
        f"on {login.target} (direct connection): schema at {at};"
        f" newest migration of this release: {newest}"
    ]
    if current is not None and not dirty and current > newest:
        # golang-migrate refuses a database newer than its source, and has no safe way
        # down: the release runs on the newer schema, as the old colour does mid-switch.
        report.append("the schema is ahead of this release: nothing to migrate")
        return report
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        proc = host.migrate(image, login, source, "up")
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode == 0:
            return report + output.splitlines()
        advice = migration_failure_advice(output)
        cleared = (
            _clear_dirty_mark(host, login, image, source, current)
            if (rolled_back_cleanly(output) and not dirty)
            else ""
        )
        if not cleared.startswith(CLEARED) or attempt == LOCK_ATTEMPTS:
            break
        say(f"  migrate | attempt {attempt} gave up waiting for a lock; again in {LOCK_PAUSE:g}s")
        time.sleep(LOCK_PAUSE)
    raise HostError(
        f"migrations failed (golang-migrate exit {proc.returncode}); no traffic moved:\n"
        + "\n".join(f"  | {line}" for line in output.splitlines())
        + f"\n  {advice}{cleared}"
        + (f" ({LOCK_ATTEMPTS} attempts)" if cleared.startswith(CLEARED) else "")
    )


def _clear_dirty_mark(host: Host, login: Any, image: str, source: Path, before: int | None) -> str:
    """After a lock or statement timeout: golang-migrate marked the failed version dirty,
    but its one transaction rolled back. Put the mark back where it was, when the file is
    one transaction; say what was done either way."""
    after = host.migrate(image, login, source, "version")
    failed, dirty = parse_migrate_version(after.stdout + after.stderr)
    if not dirty or failed is None:
        return ""
    path = _up_file(source, failed)
    if path is None or _NOT_ONE_TRANSACTION.search(path.read_text(errors="replace")):
        return (
            f". Migration {failed} does not run as one transaction, so it is left marked dirty:"
            " check what it applied, then `clipper-release migrate-force <last good version>`"
        )
    target = -1 if before is None else before
    forced = host.migrate(image, login, source, "force", str(target))
    if forced.returncode != 0:
        return f". Clearing golang-migrate's dirty mark at {failed} failed too; see above"
    return (
        f"{CLEARED} {failed} dirty; it was rolled back whole, so the"
        f" mark was cleared back to {'no version' if before is None else before}"
    )


def prune(host: Host, book: ReleaseBook) -> None:
    kept, dropped = prune_releases(book.releases, book.active, host.config.release_keep)
    if not dropped:
        return
    in_containers = {c.image for state in host.colors().values() for c in state.containers}
    for ref in images_to_remove(dropped, kept):
        if ref not in in_containers:
            host.remove_image(ref)
    for record in dropped:
        shutil.rmtree(host.config.state_dir / "migrations" / record["id"], ignore_errors=True)
    book.releases = [dict(record) for record in kept]
    book.save()
    say(f"pruned {len(dropped)} old release(s): {', '.join(r['id'] for r in dropped)}")
