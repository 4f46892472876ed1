"""The nightly PostgreSQL backup (components/backups.py): when it runs, how long the bucket
keeps it, and the bucket's region."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from components.settings import slugs
from components.settings.concern import Concern

_WEEKDAY = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_CALENDAR_RE = re.compile(
    rf"^(?:(?P<weekdays>{_WEEKDAY}((,|\.\.){_WEEKDAY})*) )?"
    r"(?P<year>[^ :-]+)-(?P<month>[^ :-]+)-(?P<day>[^ :-]+) "
    r"(?P<hour>[^ :-]+):(?P<minute>[^ :-]+)(?::(?P<second>[^ :-]+))?(?: UTC)?$"
)
_CALENDAR_PART_RE = re.compile(r"^(\*|\d+(\.\.\d+)?)(/\d+)?$")
_CALENDAR_BOUNDS = {
    "year": (1970, 2199), "month": (1, 12), "day": (1, 31),
    "hour": (0, 23), "minute": (0, 59), "second": (0, 59),
}  # fmt: skip


def _calendar_field(name: str, text: str) -> str | None:
    """The problem with one field of an OnCalendar time, or None."""
    low, high = _CALENDAR_BOUNDS[name]
    for part in text.split(","):
        match = _CALENDAR_PART_RE.match(part)
        if not match:
            return f"the {name} field {text!r} is not '*', a number, a range a..b or a list"
        numbers = [int(n) for n in re.findall(r"\d+", match[1])]
        if any(not low <= n <= high for n in numbers):
            return f"the {name} field {text!r} is outside {low}..{high}"
    return None


def _calendar(value: str) -> str:
    """A systemd OnCalendar expression in its explicit form, run at most hourly."""
    match = _CALENDAR_RE.match(value)
    if not match:
        raise ValueError(
            "not a systemd OnCalendar time such as '*-*-* 03:15:00 UTC' (optional weekdays"
            " first, then year-month-day hour:minute[:second], optional UTC)"
        )
    for name in _CALENDAR_BOUNDS:
        problem = match[name] is not None and _calendar_field(name, match[name])
        if problem:
            raise ValueError(problem)
    if "*" in match["minute"] or "/" in match["minute"] or "," in match["minute"]:
        raise ValueError("runs more than once an hour; allowed: one fixed minute")
    return value


def _spaces_region(value: str) -> str:
    if value and value not in slugs.SPACES_REGIONS:
        raise ValueError(
            "has no Spaces object storage; allowed: empty (the stack's region) or "
            + ", ".join(sorted(slugs.SPACES_REGIONS))
        )
    return value


class BackupSettings(Concern):
    """The backup's schedule, retention and bucket region."""

    backup_schedule: Annotated[str, AfterValidator(_calendar)] = Field(
        description="When the daily PostgreSQL backup runs: a systemd OnCalendar time, UTC."
    )
    backup_retention_days: int = Field(
        ge=7, le=3650, description="Days the backup bucket keeps each backup (lifecycle rule)."
    )
    backup_region: Annotated[str, AfterValidator(_spaces_region)] = Field(
        description="Spaces region of the backup bucket; empty: the stack's region. Another"
        " region keeps the backups through a regional outage."
    )
