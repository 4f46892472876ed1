"""What Grafana Alloy accepts, for the components and blocks our config uses: every argument
(with its type and whether it is required), every inner block, every export, transcribed from
Alloy's component reference (grafana/alloy v1.18, docs/sources/reference/components/
{local/local.file_match,loki/loki.source.file,loki/loki.source.journal,loki/loki.process,
loki/loki.relabel,loki/loki.write}.md, config-blocks/logging.md, stdlib/sys.md).

`check_config` walks a parsed file (tests/support/alloy_parse.py) and returns every problem:
an unknown component, argument or block, a missing required argument, a value of the wrong
type, a reference to a component or export that does not exist. It stands in for Alloy's own
loader, which is not installable here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.alloy_parse import Call, ParsedBlock, Ref

# Go's time.ParseDuration units (Alloy's `duration` type).
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


@dataclass(frozen=True)
class Arg:
    """An argument: its Alloy type and whether it is required."""

    type: str
    required: bool = False


@dataclass(frozen=True)
class BlockSchema:
    """What a block accepts: arguments, inner blocks (by name), and, for a component, exports."""

    args: Mapping[str, Arg] = field(default_factory=dict)
    blocks: Mapping[str, BlockSchema] = field(default_factory=dict)
    exports: Mapping[str, str] = field(default_factory=dict)


def _args(required: str = "", **optional: str) -> dict[str, Arg]:
    """`required` is "name:type name:type"; the rest are optional."""
    out = {n: Arg(t, True) for n, t in (pair.split(":") for pair in required.split())}
    out |= {name: Arg(t) for name, t in optional.items()}
    return out


_METRIC_COMMON = {
    "description": "string",
    "max_idle_duration": "duration",
    "prefix": "string",
    "source": "string",
    "value": "string",
}
_METRIC_BLOCKS = {
    "metric.counter": BlockSchema(
        _args(
            "name:string action:string",
            count_entry_bytes="bool",
            match_all="bool",
            **_METRIC_COMMON,
        )
    ),
    "metric.gauge": BlockSchema(_args("name:string action:string", **_METRIC_COMMON)),
    "metric.histogram": BlockSchema(_args("name:string buckets:list(number)", **_METRIC_COMMON)),
}

# loki.process's stages (only the ones whose arguments are transcribed; any other stage name
# is reported as unknown, which is the safe failure).
_STAGES: dict[str, BlockSchema] = {
    "stage.docker": BlockSchema(),
    "stage.cri": BlockSchema(
        _args(
            max_partial_lines="number",
            max_partial_line_size="number",
            max_partial_line_size_truncate="bool",
        )
    ),
    "stage.json": BlockSchema(
        _args(expressions="map(string)", regex="string", drop_malformed="bool", source="string")
    ),
    "stage.regex": BlockSchema(
        _args("expression:string", source="string", labels_from_groups="bool")
    ),
    "stage.template": BlockSchema(_args("source:string template:string")),
    "stage.labels": BlockSchema(_args(values="map(string)", source_type="string")),
    "stage.static_labels": BlockSchema(_args(values="map(string)")),
    "stage.timestamp": BlockSchema(
        _args(
            "source:string format:string",
            action_on_failure="string",
            action_on_duplicate_timestamp="string",
            fallback_formats="list(string)",
            location="string",
        )
    ),
    "stage.replace": BlockSchema(_args("expression:string", replace="string", source="string")),
    "stage.metrics": BlockSchema(blocks=_METRIC_BLOCKS),
}
# stage.match nests a whole pipeline, itself included.
_MATCH_STAGES: dict[str, BlockSchema] = dict(_STAGES)
_STAGES["stage.match"] = BlockSchema(
    _args("selector:string", action="string", drop_counter_reason="string", pipeline_name="string"),
    blocks=_MATCH_STAGES,
)
_MATCH_STAGES["stage.match"] = _STAGES["stage.match"]

_TLS = BlockSchema(
    _args(
        ca_pem="string",
        ca_file="string",
        cert_pem="string",
        cert_file="string",
        key_pem="string",
        key_file="string",
        server_name="string",
        insecure_skip_verify="bool",
        min_version="string",
    )
)

COMPONENTS: dict[str, BlockSchema] = {
    "local.file_match": BlockSchema(
        _args(
            "path_targets:list(map(string))", ignore_older_than="duration", sync_period="duration"
        ),
        exports={"targets": "targets"},
    ),
    "loki.source.file": BlockSchema(
        _args(
            "forward_to:receivers targets:targets",
            encoding="string",
            legacy_positions_file="string",
            on_positions_file_error="string",
            tail_from_end="bool",
        ),
        blocks={
            "decompression": BlockSchema(
                _args("enabled:bool format:string", initial_delay="duration")
            ),
            "file_match": BlockSchema(
                _args(enabled="bool", ignore_older_than="duration", sync_period="duration")
            ),
            "file_watch": BlockSchema(
                _args(max_poll_frequency="duration", min_poll_frequency="duration")
            ),
        },
    ),
    "loki.source.journal": BlockSchema(
        _args(
            "forward_to:receivers",
            format_as_json="bool",
            labels="map(string)",
            matches="string",
            max_age="duration",
            path="string",
            relabel_rules="rules",
        ),
        blocks={"legacy_position": BlockSchema(_args("file:string name:string"))},
    ),
    "loki.process": BlockSchema(
        _args("forward_to:receivers"), blocks=_STAGES, exports={"receiver": "receiver"}
    ),
    "loki.relabel": BlockSchema(
        _args("forward_to:receivers", max_cache_size="number"),
        blocks={
            "rule": BlockSchema(
                _args(
                    action="string",
                    modulus="number",
                    regex="string",
                    replacement="string",
                    separator="string",
                    source_labels="list(string)",
                    target_label="string",
                )
            )
        },
        exports={"receiver": "receiver", "rules": "rules"},
    ),
    "loki.write": BlockSchema(
        _args(external_labels="map(string)", max_streams="number"),
        blocks={
            "endpoint": BlockSchema(
                _args(
                    "url:string",
                    batch_size="string",
                    batch_wait="duration",
                    bearer_token_file="string",
                    bearer_token="string",
                    enable_http2="bool",
                    follow_redirects="bool",
                    headers="map(string)",
                    max_backoff_period="duration",
                    max_backoff_retries="number",
                    min_backoff_period="duration",
                    name="string",
                    no_proxy="string",
                    proxy_from_environment="bool",
                    proxy_url="string",
                    remote_timeout="duration",
                    retry_on_http_429="bool",
                    tenant_id="string",
                ),
                blocks={
                    "basic_auth": BlockSchema(
                        _args(username="string", password="string", password_file="string")
                    ),
                    "tls_config": _TLS,
                    "queue_config": BlockSchema(
                        _args(
                            block_on_overflow="bool",
                            capacity="string",
                            drain_timeout="duration",
                            min_shards="number",
                        )
                    ),
                },
            ),
            "wal": BlockSchema(
                _args(
                    drain_timeout="duration",
                    enabled="bool",
                    max_read_frequency="duration",
                    max_segment_age="duration",
                    min_read_frequency="duration",
                )
            ),
        },
        exports={"receiver": "receiver"},
    ),
}
# Configuration blocks: no label, no exports.
CONFIG_BLOCKS: dict[str, BlockSchema] = {
    "logging": BlockSchema(
        _args(destination="string", format="string", level="string", write_to="receivers")
    ),
}
FUNCTIONS: dict[str, str] = {"sys.env": "string"}
LOG_LEVELS = ("error", "warn", "info", "debug")


def _kind(value: Any, exports: dict[str, str]) -> str | None:
    """The Alloy type of a reference or call (None for a literal)."""
    if isinstance(value, Call):
        return FUNCTIONS.get(value.function, "unknown-function")
    if isinstance(value, Ref):
        return exports.get(value.path, "unknown-reference")
    return None


def _type_problems(where: str, typ: str, value: Any, exports: dict[str, str]) -> list[str]:
    kind = _kind(value, exports)
    if kind in ("unknown-function", "unknown-reference"):
        return [f"{where}: {kind} {getattr(value, 'path', getattr(value, 'function', ''))}"]
    if kind is not None:
        return [] if kind == typ else [f"{where}: {typ} expected, got a {kind}"]
    if typ in ("string", "duration", "bool", "number"):
        return _scalar_problems(where, typ, value)
    if typ.startswith(("list(", "map(")):
        return _collection_problems(where, typ, value, exports)
    if typ == "receivers":
        return _type_problems(where, "list(receiver)", value, exports)
    return [f"{where}: a {typ} reference expected, got {value!r}"]


def _scalar_problems(where: str, typ: str, value: Any) -> list[str]:
    """A literal string, duration, bool or number."""
    if typ in ("string", "duration"):
        if not isinstance(value, str):
            return [f"{where}: {typ} expected, got {value!r}"]
        ok = typ == "string" or _DURATION.match(value) is not None
        return [] if ok else [f"{where}: {value!r} is not a duration"]
    if typ == "bool":
        return [] if isinstance(value, bool) else [f"{where}: bool expected, got {value!r}"]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return [] if is_number else [f"{where}: number expected, got {value!r}"]


def _collection_problems(where: str, typ: str, value: Any, exports: dict[str, str]) -> list[str]:
    """A literal `list(T)` or `map(T)`: each item checked as T."""
    if typ.startswith("list("):
        if not isinstance(value, list):
            return [f"{where}: {typ} expected, got {value!r}"]
        inner = typ[len("list(") : -1]
        return [
            p
            for n, v in enumerate(value)
            for p in _type_problems(f"{where}[{n}]", inner, v, exports)
        ]
    if not isinstance(value, dict):
        return [f"{where}: {typ} expected, got {value!r}"]
    inner = typ[len("map(") : -1]
    return [p for k, v in value.items() for p in _type_problems(f"{where}.{k}", inner, v, exports)]


def _check_block(
    where: str, block: ParsedBlock, schema: BlockSchema, exports: dict[str, str]
) -> list[str]:
    problems = [
        f"{where}: unknown argument {name!r}"
        for name in block.attributes
        if name not in schema.args
    ]
    problems += [
        f"{where}: required argument {name!r} missing"
        for name, arg in schema.args.items()
        if arg.required and name not in block.attributes
    ]
    for name, value in block.attributes.items():
        if name in schema.args:
            problems += _type_problems(f"{where}.{name}", schema.args[name].type, value, exports)
    for inner in block.blocks:
        inner_where = f"{where} > {inner.name} (line {inner.line})"
        if inner.label is not None:
            problems.append(f"{inner_where}: an inner block takes no label")
        if inner.name not in schema.blocks:
            problems.append(f"{inner_where}: unknown block {inner.name!r}")
            continue
        problems += _check_block(inner_where, inner, schema.blocks[inner.name], exports)
    return problems


def check_config(blocks: list[ParsedBlock]) -> list[str]:
    """Every problem Alloy's loader would report for these top-level blocks (as far as the
    transcribed reference knows), empty when the file is valid."""
    problems: list[str] = []
    exports: dict[str, str] = {}
    seen: set[tuple[str, str | None]] = set()
    for block in blocks:
        if (block.name, block.label) in seen:
            problems.append(f"{block.name} {block.label!r}: declared twice")
        seen.add((block.name, block.label))
        schema = COMPONENTS.get(block.name)
        if schema and block.label:
            exports |= {f"{block.name}.{block.label}.{e}": t for e, t in schema.exports.items()}
    for block in blocks:
        where = f"{block.name} {block.label or ''} (line {block.line})".replace("  ", " ")
        if block.name in COMPONENTS:
            if not block.label:
                problems.append(f"{where}: a component needs a label")
            problems += _check_block(where, block, COMPONENTS[block.name], exports)
        elif block.name in CONFIG_BLOCKS:
            if block.label is not None:
                problems.append(f"{where}: a configuration block takes no label")
            problems += _check_block(where, block, CONFIG_BLOCKS[block.name], exports)
            level = block.attributes.get("level")
            if block.name == "logging" and level is not None and level not in LOG_LEVELS:
                problems.append(f"{where}: log level {level!r} is not one of {LOG_LEVELS}")
        else:
            problems.append(f"{where}: unknown component or block {block.name!r}")
    return problems
