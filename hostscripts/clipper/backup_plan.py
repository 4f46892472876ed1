"""What clipper-backup decides, as pure functions: object keys, which backups are complete,
which one is "latest", and what a drill checks."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from .errors import HostError

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP_RE = re.compile(r"^\d{8}T\d{6}Z$")
# A clock may be a little ahead on the host that made a backup; beyond this it is wrong.
FUTURE_SKEW = dt.timedelta(minutes=5)


def stamp(moment: dt.datetime) -> str:
    return moment.strftime(STAMP_FORMAT)


def backup_keys(prefix: str, moment: dt.datetime) -> dict[str, str]:
    """The object keys of one backup (dump, manifest, config archive)."""
    day = moment.strftime("%Y/%m/%d")
    name = stamp(moment)
    return {
        "dump": f"{prefix}/postgres/{day}/{name}.dump",
        "manifest": f"{prefix}/postgres/{day}/{name}.json",
        "config": f"{prefix}/config/{day}/{name}.tar.gz",
    }


def _stamp_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".json")


def complete_manifests(keys: Sequence[str]) -> list[str]:
    """Manifest keys whose dump is listed too, oldest first (the stamp sorts by time)."""
    present = set(keys)
    manifests = [
        key
        for key in keys
        if key.endswith(".json")
        and _STAMP_RE.match(_stamp_of(key))
        and key.removesuffix(".json") + ".dump" in present
    ]
    return sorted(manifests, key=_stamp_of)


def from_the_future(key: str, now: dt.datetime) -> bool:
    """A backup stamped after now (plus a little skew): a wrong clock made it."""
    made = dt.datetime.strptime(_stamp_of(key), STAMP_FORMAT).replace(tzinfo=dt.UTC)
    return made > now + FUTURE_SKEW


def manifest_key_for(selector: str, prefix: str, keys: Sequence[str], now: dt.datetime) -> str:
    """`latest`, a manifest key or a dump key -> the manifest key of a complete backup.
    "latest" is never a backup stamped in the future."""
    manifests = complete_manifests(keys)
    if selector == "latest":
        usable = [key for key in manifests if not from_the_future(key, now)]
        if not usable:
            future = len(manifests) - len(usable)
            note = f" ({future} stamped in the future, ignored)" if future else ""
            raise HostError(f"no complete backup under {prefix}/postgres/ in the bucket{note}")
        return usable[-1]
    key = selector.removesuffix(".dump").removesuffix(".json") + ".json"
    if key not in manifests:
        raise HostError(f"{selector} is not a complete backup (see `clipper-backup list`)")
    return key


def drill_database(database: str, moment: dt.datetime) -> str:
    """The scratch database a drill restores into: `<db>_drill_<stamp>`."""
    return f"{database}_drill_{stamp(moment).lower()}"


def leftover_drill_databases(database: str, existing: Sequence[str]) -> list[str]:
    """Scratch databases a killed drill left behind (dropped at the next drill's start)."""
    pattern = re.compile(rf"^{re.escape(database)}_drill_\d{{8}}t\d{{6}}z$")
    return sorted(name for name in existing if pattern.match(name))


def dump_fits(free_bytes: int, database_bytes: int) -> bool:
    """Whether a custom-format dump (compressed, usually far smaller than the database) fits,
    with room to spare: the database's size is the safe upper bound."""
    return free_bytes > database_bytes
