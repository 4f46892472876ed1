"""Logs from every host at once, each line prefixed by its host (pure helpers).

Docker applies `--since` to the containers' logs itself; nginx's access log is a file, so its
lines are filtered here by their `time` field (the JSON log format of components/renderers/
nginx.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class SinceError(ValueError):
    """`--since` is neither a duration (90s, 10m, 1h30m) nor an ISO 8601 time."""


def since_cutoff(since: str, now: dt.datetime) -> dt.datetime:
    """The moment `--since` means: `now` minus a duration, or an absolute ISO 8601 time."""
    match = _DURATION.fullmatch(since)
    if since and match and any(match.groups()):
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return now - dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise SinceError(
            f"--since {since!r}: give a duration (90s, 10m, 1h30m) or an ISO 8601 time"
            " (2026-12-02T06:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def access_line_after(text: str, cutoff: dt.datetime) -> bool:
    """Whether an access-log line is at or after `cutoff` (lines without a time are kept)."""
    try:
        stamp = json.loads(text).get("time")
        moment = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return True
    return moment >= cutoff


def prefixed(host: str, text: str, width: int) -> str:
    """`app-1 | the line`, the host names padded to one width so the lines align."""
    return f"{host.ljust(width)} | {text}"
