"""Time as the host scripts write it: UTC, whole seconds, one format."""

from __future__ import annotations

import datetime as dt

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(moment: dt.datetime) -> str:
    return moment.strftime(ISO_FORMAT)


def parse_iso(text: str) -> dt.datetime:
    """`YYYY-MM-DDTHH:MM:SSZ` as an aware UTC time (ValueError otherwise)."""
    return dt.datetime.strptime(text, ISO_FORMAT).replace(tzinfo=dt.UTC)
