"""Check recorded resource inputs against the provider schema as the installed SDKs encode it.

Each SDK (pulumi_digitalocean, pulumi_command, pulumi_random, pulumi_tls, pulumi_docker) registers
its resource tokens with their classes (`_utilities.register(resource_modules=...)` in its
`__init__.py`); each resource's `<Name>Args` and every nested `<...>Args` is a Pulumi input type
whose properties carry the wire (camelCase) name, the type and whether None is admitted. That
is the provider's schema, generated from it by Pulumi's codegen: names, nesting, types and
required properties. The recorded inputs are what the engine would send the provider.
"""

from __future__ import annotations

import collections.abc
import difflib
import enum
import functools
import importlib
import json
import re
import typing
from pathlib import Path
from typing import Any

import pulumi
from pulumi import _types
from pulumi.runtime import rpc

SDKS = ("pulumi_digitalocean", "pulumi_command", "pulumi_random", "pulumi_tls", "pulumi_docker")


@functools.cache
def args_classes() -> dict[str, type]:
    """Resource token -> its Args input type, for every resource of the installed SDKs."""
    classes: dict[str, type] = {}
    for sdk in SDKS:
        module = importlib.import_module(sdk)
        text = Path(module.__file__ or "").read_text()
        match = re.search(r'resource_modules="""(.*?)"""', text, re.S)
        assert match, f"{sdk} registers no resource modules"
        for entry in json.loads(match[1]):
            owner = importlib.import_module(entry["fqn"])
            for token, name in entry["classes"].items():
                classes[token] = getattr(owner, f"{name}Args")
    return classes


def _members(hint: Any) -> list[Any]:
    """The concrete types a hint admits, without Input's Awaitable/Output wrappers and None."""
    if typing.get_origin(hint) is typing.Union:
        found: list[Any] = []
        for arg in typing.get_args(hint):
            found += _members(arg)
        return found
    origin = typing.get_origin(hint)
    if hint is type(None) or origin in (collections.abc.Awaitable, pulumi.Output):
        return []
    if hint is pulumi.Output or (isinstance(hint, type) and issubclass(hint, pulumi.Output)):
        return []
    return [hint]


def _matches(value: Any, hint: Any, path: str) -> list[str] | None:
    """Problems of `value` against one concrete type, or None when the type does not apply."""
    if hint is Any:
        return []
    if isinstance(hint, type) and _types.is_input_type(hint):
        return check_object(value, hint, path) if isinstance(value, dict) else None
    if typing.get_origin(hint) in (collections.abc.Sequence, list, collections.abc.Mapping, dict):
        return _collection_matches(value, hint, path)
    return _scalar_matches(value, hint, path)


def _collection_matches(value: Any, hint: Any, path: str) -> list[str] | None:
    """A list (Sequence) or a map (Mapping): each item checked against the item type."""
    if typing.get_origin(hint) in (collections.abc.Sequence, list):
        if not isinstance(value, list):
            return None
        (item,) = typing.get_args(hint) or (Any,)
        return [p for i, v in enumerate(value) for p in check_value(v, item, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return None
    item = (typing.get_args(hint) or (str, Any))[1]
    return [p for k, v in value.items() for p in check_value(v, item, f"{path}.{k}")]


def _scalar_matches(value: Any, hint: Any, path: str) -> list[str] | None:
    if hint is bool:
        return [] if isinstance(value, bool) else None
    if hint is int:  # the wire has only floats: an int is a whole number
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value == int(value)
        return [] if ok else None
    if hint is float:
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else None
    if hint is str or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return [] if isinstance(value, str) else None
    return [f"{path}: no check for schema type {hint!r}"]


def check_value(value: Any, hint: Any, path: str) -> list[str]:
    """Problems of one recorded value against a schema type hint."""
    if rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
    if value is None or value == rpc.UNKNOWN:
        return []
    members = _members(hint)
    results = [r for r in (_matches(value, m, path) for m in members) if r is not None]
    if not results:
        return [f"{path}: {json.dumps(value, default=str)[:80]} is not {hint!r}"]
    return min(results, key=len)


def check_object(inputs: dict[str, Any], args_type: type, path: str) -> list[str]:
    """Unknown keys (with a suggestion), missing required ones and wrong types, recursively."""
    types = _types.input_type_types(args_type)
    required = _types._required_property_names(args_type)
    problems: list[str] = []
    for key, value in inputs.items():
        if key not in types:
            near = difflib.get_close_matches(key, list(types), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"{path}.{key}: not an input of {args_type.__name__}{hint}")
            continue
        problems += check_value(value, types[key], f"{path}.{key}")
    problems += [
        f"{path}.{key}: required by {args_type.__name__} but not declared"
        for key in sorted(required - set(k for k, v in inputs.items() if v is not None))
    ]
    return problems


def check_resource(typ: str, name: str, inputs: dict[str, Any]) -> list[str]:
    """Every way one declared resource's inputs disagree with its provider's schema."""
    args_type = args_classes().get(typ)
    if args_type is None:
        return [f"{name}: {typ} is not a resource of the installed SDKs"]
    return check_object(inputs, args_type, name)
