"""Value checks that several concerns share: one of a known set (with a did-you-mean), email
addresses, and the size slugs of droplets and managed data stores.

Each check raises `ValueError` with the rule in words; `parse.py` turns that into one line
naming the key and the value. Checks that only one concern uses live beside its fields.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated

from pydantic import AfterValidator

from components.settings import slugs


def one_of(allowed: frozenset[str] | tuple[str, ...], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            near = difflib.get_close_matches(value, list(allowed), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ValueError(f"not a known {what}{hint}; allowed: {', '.join(sorted(allowed))}")
        return value

    return AfterValidator(check)


_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@([a-z0-9-]+\.)+[a-z]{2,63}$")


def email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ValueError("not an email address such as ops@example.com")
    return value


Email = Annotated[str, AfterValidator(email)]
DropletSize = Annotated[str, one_of(slugs.DROPLET_SIZES, "droplet size")]
DatabaseSize = Annotated[str, one_of(slugs.DATABASE_SIZES, "database size")]
