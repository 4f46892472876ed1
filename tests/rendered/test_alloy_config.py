"""Grafana Alloy's config on the app hosts, as shipped. No Alloy binary is installable here
(not packaged for Debian; nothing may be downloaded), so the file is parsed back
(tests/support/alloy_parse.py) and every component, argument, inner block, value type and
reference is checked against Alloy's component reference (tests/support/alloy_schema.py,
transcribed from grafana/alloy v1.18's docs). The check is shown to fail on each kind of
mistake. Then what the pipeline does is checked against its neighbours: the fields it reads
against nginx's log format, the metrics it exports against the alert rules, its route groups
against nginx's routing, its push URL against Loki's address."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest

from components.host.layout import LOKI_PORT, NGINX_ACCESS_LOG, NGINX_SITE_FILE
from components.renderers import alloy, prometheus
from components.renderers.monitoring_units import AGENTS_ACTIVATE_SCRIPT, ETC_DIR, UNIT_DIR
from components.renderers.nginx import BACKEND_PREFIXES
from tests.support.alloy_parse import AlloySyntaxError, Call, ParsedBlock, Ref, parse_alloy
from tests.support.alloy_schema import check_config
from tests.support.monitoring import STACKS, role_files
from tests.support.program import stack_run

CONFIG_PATH = f"{ETC_DIR}/alloy/config.alloy"
# `alloy run`'s flags (docs/sources/reference/cli/run.md, v1.18) that the unit may pass.
RUN_FLAGS = {
    "--server.http.listen-addr", "--storage.path", "--disable-reporting", "--stability.level",
    "--config.format", "--cluster.enabled", "--server.http.ui-path-prefix",
}  # fmt: skip


def _text(stack: str) -> str:
    return role_files(stack, "app")[CONFIG_PATH].content


def _blocks(stack: str) -> list[ParsedBlock]:
    return parse_alloy(_text(stack))


def _component(blocks: list[ParsedBlock], name: str, label: str) -> ParsedBlock:
    (found,) = [b for b in blocks if b.name == name and b.label == label]
    return found


def _stages(block: ParsedBlock) -> list[ParsedBlock]:
    """Every stage of a loki.process, nested match pipelines included, in order."""
    found: list[ParsedBlock] = []
    for inner in block.blocks:
        found.append(inner)
        if inner.name == "stage.match":
            found += _stages(inner)
    return found


# ------------------------------------------------------------------ the file is valid Alloy


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_config_uses_only_documented_components_arguments_and_blocks(
    stack: str,
) -> None:
    assert check_config(_blocks(stack)) == []


@pytest.mark.parametrize(
    ("mistake", "old", "new", "reported"),
    [
        (
            "unknown argument",
            "  max_age       =",
            "  max_agee      =",
            "unknown argument 'max_agee'",
        ),
        (
            "unknown block",
            "stage.timestamp {",
            "stage.timestamps {",
            "unknown block 'stage.timestamps'",
        ),
        (
            "unknown component",
            'loki.relabel "journal"',
            'loki.relabels "journal"',
            "unknown component",
        ),
        ("wrong type", 'max_age       = "12h"', 'max_age       = "12 hours"', "is not a duration"),
        (
            "bad reference",
            "forward_to    = [loki.write.loki.receiver]",
            "forward_to    = [loki.write.lokki.receiver]",
            "unknown-reference loki.write.lokki",
        ),
        (
            "missing required",
            'source   = "status_class"\n',
            "",
            "required argument 'source' missing",
        ),
        ("label on a stage", "stage.docker {}", 'stage.docker "x" {}', "takes no label"),
    ],
)
def test_the_check_reports_each_kind_of_mistake(
    mistake: str, old: str, new: str, reported: str
) -> None:
    text = _text("staging")
    assert old in text, mistake
    problems = check_config(parse_alloy(text.replace(old, new, 1)))
    assert any(reported in p for p in problems), (mistake, problems)


def test_the_parser_refuses_what_is_not_alloy_syntax() -> None:
    text = _text("staging")
    for broken in (text.replace("}", "", 1), text.replace(" = ", " : ", 1), text + "x = 1\n"):
        with pytest.raises(AlloySyntaxError):
            parse_alloy(broken)


# ------------------------------------------------------------------ what the pipeline does


def _nginx_log_fields(stack: str) -> set[str]:
    """The keys of one access-log line, from the shipped nginx site's `clipper_json` format."""
    site = role_files(stack, "app")[NGINX_SITE_FILE].content
    match = re.search(r"log_format clipper_json escape=json (.*?);\n", site, re.S)
    assert match, "the nginx site defines the clipper_json log format"
    template = "".join(re.findall(r"'([^']*)'", match.group(1)))
    line = re.sub(r"\$[a-z_0-9]+", "1", template)
    return set(json.loads(line))


@pytest.mark.parametrize("stack", STACKS)
def test_alloy_reads_only_fields_that_nginx_writes(stack: str) -> None:
    blocks = _blocks(stack)
    (json_stage,) = [s for s in _stages(_component(blocks, "loki.process", "nginx"))
                     if s.name == "stage.json"]  # fmt: skip
    assert set(json_stage.attributes["expressions"].values()) <= _nginx_log_fields(stack)
    (target,) = _component(blocks, "local.file_match", "nginx").attributes["path_targets"]
    assert target["__path__"] == NGINX_ACCESS_LOG


@pytest.mark.parametrize("stack", STACKS)
def test_every_source_reaches_loki_through_the_declared_chain(stack: str) -> None:
    blocks = {(b.name, b.label): b for b in _blocks(stack)}

    def reaches_loki(ref: Ref) -> bool:
        name, label, _export = ref.path.rsplit(".", 2)
        if (name, label) == ("loki.write", "loki"):
            return True
        nxt = blocks[(name, label)].attributes["forward_to"]
        return bool(nxt) and all(reaches_loki(r) for r in nxt)

    sources = [b for (name, _), b in blocks.items() if name.startswith("loki.source.")]
    assert {(b.name, b.label) for b in sources} == {
        ("loki.source.file", "nginx"), ("loki.source.file", "containers"),
        ("loki.source.journal", "journal"),
    }  # fmt: skip
    for source in sources:
        assert all(reaches_loki(r) for r in source.attributes["forward_to"]), source.label
        if source.name == "loki.source.file":
            # A first start never replays old lines into the request counters.
            assert source.attributes["tail_from_end"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_every_stream_is_labelled_with_its_job_and_the_host_from_the_environment(
    stack: str,
) -> None:
    blocks = _blocks(stack)
    labels: list[dict[str, Any]] = [
        *(t for b in blocks if b.name == "local.file_match" for t in b.attributes["path_targets"]),
        _component(blocks, "loki.source.journal", "journal").attributes["labels"],
    ]
    assert {str(lbl["job"]) for lbl in labels} == {"nginx", "containers", "journal"}
    for lbl in labels:
        assert lbl["host"] == Call("sys.env", ("HOST",))
    relabel = _component(blocks, "loki.relabel", "journal")
    (rule,) = relabel.blocks
    assert rule.attributes == {"source_labels": ["__journal__systemd_unit"], "target_label": "unit"}


@pytest.mark.parametrize("stack", STACKS)
def test_alloy_exports_the_metrics_the_alert_rules_and_dashboards_read(stack: str) -> None:
    stages = _stages(_component(_blocks(stack), "loki.process", "nginx"))
    metrics = {
        m.attributes["prefix"] + m.attributes["name"]: m
        for s in stages if s.name == "stage.metrics" for m in s.blocks
    }  # fmt: skip
    assert set(metrics) == {
        prometheus.REQUESTS_METRIC, prometheus.DURATION_METRIC,
        prometheus.WEBSOCKET_DURATION_METRIC,
    }  # fmt: skip
    counter = metrics[prometheus.REQUESTS_METRIC]
    assert counter.name == "metric.counter"
    assert counter.attributes["match_all"] is True and counter.attributes["action"] == "inc"
    histogram = metrics[prometheus.DURATION_METRIC]
    assert histogram.name == "metric.histogram" and histogram.attributes["source"] == "request_time"
    # The p95 alert's threshold is a bucket boundary, so the quantile is not a guess across it.
    assert prometheus.LATENCY_P95_SECONDS in histogram.attributes["buckets"]
    # Counters survive a quiet night (Alloy's default idle expiry is 5 minutes).
    assert {m.attributes["max_idle_duration"] for m in metrics.values()} == {"24h"}


@pytest.mark.parametrize("stack", STACKS)
def test_websocket_upgrades_stay_out_of_the_request_latency(stack: str) -> None:
    stages = _stages(_component(_blocks(stack), "loki.process", "nginx"))
    matches = {s.attributes["pipeline_name"]: s for s in stages if s.name == "stage.match"}
    latency, websocket = matches["latency"], matches["websocket"]
    assert 'status_class!="1xx"' in latency.attributes["selector"]
    assert 'status_class="1xx"' in websocket.attributes["selector"]
    (names,) = [[m.attributes["name"] for m in s.blocks] for s in latency.blocks]
    assert names == [alloy.DURATION_NAME]


def _status_and_route_group(stages: list[ParsedBlock], line: dict[str, Any]) -> dict[str, str]:
    """Run the rendered regex and template stages on one parsed log line: Python's `re` reads
    these RE2 expressions the same way; the route-group template is a chain of
    `if .x`/`else if eq .route "..."` branches, evaluated here by its own text."""
    extracted = {k: str(v) for k, v in line.items()}
    for stage in stages:
        source = stage.attributes.get("source", "")
        if stage.name == "stage.regex":
            found = re.match(stage.attributes["expression"], extracted.get(source, ""))
            extracted |= {k: v or "" for k, v in (found.groupdict() if found else {}).items()}
        elif stage.name == "stage.template" and source == "status_class":
            extracted[source] = stage.attributes["template"].replace(
                "{{ .Value }}", extracted[source]
            )
        elif stage.name == "stage.template":
            template = stage.attributes["template"]
            for condition, result in re.findall(r"{{ (?:else )?if ([^}]+) }}(\w+)", template):
                field, _, value = condition.removeprefix("eq ").partition(" ")
                got = extracted.get(field.lstrip("."), "")
                if (got == value.strip('"')) if value else bool(got):
                    extracted[source] = result
                    break
            else:
                extracted[source] = re.findall(r"{{ else }}(\w+){{ end }}", template)[0]
    return {k: extracted[k] for k in ("status_class", "route_group")}


@pytest.mark.parametrize(
    ("path", "route", "status", "group"),
    [
        ("/api/v1/clips", "backend", 200, "api"),
        ("/api/v1/watch-parties/abc/ws", "backend", 101, "websocket"),
        ("/api/v1/chat/channels/c1/ws", "backend", 400, "websocket"),
        ("/api/v1/chat/channels/c1/messages", "backend", 200, "api"),
        ("/health/ready", "backend", 503, "health"),
        ("/sitemap.xml", "backend", 200, "seo"),
        (f"{BACKEND_PREFIXES[0]}somebody", "backend", 200, "seo"),
        ("/clips/123", "frontend", 200, "spa"),
        ("/", "frontend", 304, "spa"),
        ("/.well-known/acme-challenge/x", "", 404, "edge"),
    ],
)
def test_route_groups_follow_nginxs_routing(path: str, route: str, status: int, group: str) -> None:
    stages = _stages(_component(_blocks("production"), "loki.process", "nginx"))
    line = {"path": path, "route": route, "status": status}
    assert _status_and_route_group(stages, line) == {
        "status_class": f"{str(status)[0]}xx",
        "route_group": group,
    }
    assert group in alloy.ROUTE_GROUPS


@pytest.mark.parametrize("stack", STACKS)
def test_alloy_pushes_to_loki_on_the_monitoring_private_address(stack: str) -> None:
    (droplet,) = [
        d for d in stack_run(stack).of_type("digitalocean:index/droplet:Droplet")
        if d.inputs["name"] == f"clipper-{stack}-monitoring"
    ]  # fmt: skip
    write = _component(_blocks(stack), "loki.write", "loki")
    (endpoint,) = write.blocks
    address = droplet.outputs["ipv4AddressPrivate"]
    assert endpoint.attributes["url"] == f"http://{address}:{LOKI_PORT}/loki/api/v1/push"
    assert write.attributes["external_labels"] == {"environment": stack}


@pytest.mark.parametrize("stack", STACKS)
def test_the_alloy_unit_passes_only_documented_run_flags(stack: str) -> None:
    files = role_files(stack, "app")
    unit = files[f"{UNIT_DIR}/clipper-alloy.service"].content
    match = re.search(r"^ExecStart=(.*?)(?=^\w+=)", unit, re.M | re.S)
    assert match
    argv = shlex.split(match.group(1).replace("\\\n", " "))
    (image,) = [n for n, word in enumerate(argv) if word.startswith("grafana/alloy:")]
    args = argv[image + 1 :]
    assert args[0] == "run" and args[-1] == alloy.CONFIG_FILE
    assert {a.split("=", 1)[0] for a in args[1:-1]} <= RUN_FLAGS
    assert AGENTS_ACTIVATE_SCRIPT in files
