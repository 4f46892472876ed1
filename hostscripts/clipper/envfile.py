"""The platform's env-file format (components/renderers/env_file.py writes it): `KEY=VALUE`
lines, `#` comment lines, and `KEY="..."` with the escapes `\\\\`, `\\"` and `\\n` for values
with newlines, quotes, backslashes, `$` or edge spaces. Errors name the file and line, never
the value (it may be a secret)."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ConfigError

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _unquote_env_value(raw: str, where: str) -> str:
    """Decode `"..."` (the whole rest of the line)."""
    out: list[str] = []
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            escaped = raw[index + 1 : index + 2]
            if escaped not in _ENV_ESCAPES:
                raise ConfigError(
                    f'{where}: unknown escape in a quoted value (allowed: \\\\ \\" \\n)'
                )
            out.append(_ENV_ESCAPES[escaped])
            index += 2
            continue
        if char == '"':
            if raw[index + 1 :]:
                raise ConfigError(f"{where}: text after the closing quote")
            return "".join(out)
        out.append(char)
        index += 1
    raise ConfigError(f"{where}: the quoted value has no closing quote")


def parse_env_text(text: str, source: str = "env file") -> dict[str, str]:
    """The variables of an env file's text (see the module's docstring for the format)."""
    values: dict[str, str] = {}
    # Split on \n only: str.splitlines() would also split on \r, \v, \x1c..., which an unquoted
    # value may hold.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source}, line {number}"
        key, sep, raw = line.partition("=")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise ConfigError(f"{where}: expected KEY=VALUE with a variable name as KEY")
        if key in values:
            raise ConfigError(f"{where}: {key} is set twice")
        values[key] = _unquote_env_value(raw, where) if raw.startswith('"') else raw
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """An env file the Pulumi program wrote (a clear error when it is missing or unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path} is missing: the Pulumi program writes it over SSH before a deploy"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_env_text(text, str(path))


def read_secret_env(path: Path, required: Sequence[str] = ()) -> dict[str, str]:
    """A mode-0600 env file holding secrets: refused when others may read it or when one of
    `required` is empty."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: the Pulumi program writes it over SSH") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{path} is mode {stat.S_IMODE(mode):04o}; it must be 0600")
    values = read_env_file(path)
    missing = [key for key in required if not values.get(key)]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}")
    return values


def env_digest(env: Mapping[str, str]) -> str:
    """sha256 of the env file's variables (comments and order do not count)."""
    canonical = json.dumps(dict(sorted(env.items())), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
