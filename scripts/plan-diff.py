#!/usr/bin/env python3
"""What changed between two `python -m components plan --json` files.

    python3 scripts/plan-diff.py BEFORE.json AFTER.json [--text]

Resources are matched by type and name, or, for a resource whose type changed, by the old type
it aliases (`options.aliases`: Pulumi moves its state, so it is reported as moved, not as
removed and added). Prints each moved, added and removed resource, then each
changed path of a matched resource (`parent`, `inputs.<key>...`, `options.<key>...`) and of
the stack outputs. A list of objects that all have a unique "path" (a RemoteFiles bundle's
files) is matched by path, so one new file reads as one added entry, not a shifted list.
`--text` adds a unified diff of every changed multi-line string (user_data, file contents).
Exit 0: identical plans; 1: differences (listed); 2: unreadable input. Standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Iterator
from typing import Any

Key = tuple[str, str]
_MISSING = object()


def _by_path(items: list[Any]) -> dict[str, Any] | None:
    """The list keyed by each element's "path", when every element is an object with a unique
    one; else None."""
    if not items or not all(isinstance(i, dict) and isinstance(i.get("path"), str) for i in items):
        return None
    keyed = {i["path"]: i for i in items}
    return keyed if len(keyed) == len(items) else None


def changes(before: Any, after: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(path, before, after) for each leaf that differs; a missing side is _MISSING."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            yield from changes(before.get(key, _MISSING), after.get(key, _MISSING), f"{path}.{key}")
        return
    if isinstance(before, list) and isinstance(after, list):
        old, new = _by_path(before), _by_path(after)
        if old is not None and new is not None:
            for key in sorted(set(old) | set(new)):
                yield from changes(old.get(key, _MISSING), new.get(key, _MISSING), f"{path}[{key}]")
            return
        if len(before) == len(after):
            for n, (b, a) in enumerate(zip(before, after, strict=True)):
                yield from changes(b, a, f"{path}[{n}]")
            return
    if before != after:
        yield path, before, after


def _resources(plan: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    table: dict[Key, dict[str, Any]] = {}
    for resource in plan["resources"]:
        key = (resource["type"], resource["name"])
        if key in table:
            raise ValueError(f"two resources named {key[1]} of type {key[0]}")
        table[key] = resource
    return table


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    if isinstance(value, str) and "\n" in value:
        return f"({len(value.encode())} bytes, {value.count(chr(10))} lines)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _text_diff(path: str, before: Any, after: Any) -> list[str]:
    old = before if isinstance(before, str) else ""
    new = after if isinstance(after, str) else ""
    if "\n" not in old + new:
        return []
    return list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"before {path}", f"after {path}", lineterm=""
        )
    )


def _aliased(old: dict[Key, Any], new: dict[Key, Any]) -> dict[Key, Key]:
    """New resources that alias an old type of the same name the after plan no longer has
    (Pulumi moves their state: nothing is replaced), as new key -> old key."""
    moves = {}
    for (typ, name), resource in new.items():
        for alias in resource.get("options", {}).get("aliases", []):
            if (alias, name) in old and (alias, name) not in new and (typ, name) not in old:
                moves[(typ, name)] = (alias, name)
    return moves


def _without_aliases(resource: dict[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in resource.get("options", {}).items() if k != "aliases"}
    return {**resource, "options": options}


def diff_plans(before: dict[str, Any], after: dict[str, Any], *, text: bool = False) -> list[str]:
    """The report's lines; empty when the plans are the same."""
    old, new = _resources(before), _resources(after)
    moves = _aliased(old, new)
    lines = [f"moved (aliased): {o[0]} -> {t} {n}" for (t, n), o in sorted(moves.items())]
    lines += [f"added resource: {t} {n}" for t, n in sorted(new.keys() - old.keys() - moves.keys())]
    lines += [
        f"removed resource: {t} {n}"
        for t, n in sorted(old.keys() - new.keys() - set(moves.values()))
    ]
    pairs: list[tuple[str, Any, Any]] = [
        (f"{t} {n}", old[(t, n)], new[(t, n)]) for t, n in sorted(old.keys() & new.keys())
    ]
    pairs += [
        (f"{t} {n}", _without_aliases(old[was]), _without_aliases(new[(t, n)]))
        for (t, n), was in sorted(moves.items())
    ]
    pairs.append(("stack", {"outputs": before.get("outputs")}, {"outputs": after.get("outputs")}))
    for label, b, a in pairs:
        for field in ("parent", "inputs", "options", "outputs"):
            for path, was, now in changes(b.get(field, _MISSING), a.get(field, _MISSING), field):
                lines.append(f"changed: {label}: {path}: {_describe(was)} -> {_describe(now)}")
                if text:
                    lines += _text_diff(path, was, now)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--text", action="store_true", help="unified diffs of changed texts")
    args = parser.parse_args(argv)
    try:
        plans = []
        for name in (args.before, args.after):
            with open(name, encoding="utf-8") as handle:
                plans.append(json.load(handle))
        lines = diff_plans(plans[0], plans[1], text=args.text)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"plan-diff: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines) if lines else "plan-diff: no differences")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
