"""Grafana Alloy on each app host: ships logs to Loki and turns nginx's JSON access log into the
request metrics Prometheus alerts on and the dashboards draw. (Alloy replaces Promtail, which
reached its end of life on 2026-03-02; the pipeline is the same, in Alloy's syntax.)

Inputs (host paths mounted read-only into the container), each with the labels `job` and
`host` (the droplet's name, from the `HOST` environment variable the systemd unit sets):
- host_layout.NGINX_ACCESS_LOG (nginx's `clipper_json` format, components/renderers/nginx.py):
  labels `status_class` (2xx..5xx), `route` (backend/frontend, "" when nginx answered itself)
  and `route_group` (ROUTE_GROUPS, from the request path and nginx's own routing tables);
  metrics `clipper_nginx_http_requests_total{status_class,route,route_group}`,
  `clipper_nginx_http_request_duration_seconds` (nginx's `request_time`, every response but
  WebSocket upgrades) and `clipper_nginx_websocket_connection_duration_seconds` (the upgrades:
  their `request_time` is the connection's lifetime);
- the containers' json-file logs (both colours' backend and frontend, migrations);
- the systemd journal (sshd, fail2ban, the Valkey tunnel, cloud-init), label `unit`.

Alloy's HTTP server (host_layout.ALLOY_HTTP_PORT, VPC only) serves these metrics and Alloy's
own (`alloy_*`, component health) on /metrics, which Prometheus scrapes.
No Alloy binary is packaged for Debian: tests/rendered/test_alloy_config.py parses this file and
checks every component, argument and block against Alloy's component reference.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.host.layout import ALLOY_HTTP_PORT, LOKI_PORT, NGINX_ACCESS_LOG
from components.renderers.alloy_syntax import Block, Expr, Value, document
from components.renderers.nginx import BACKEND_EXACT_PATHS, BACKEND_PREFIXES, WEBSOCKET_LOCATION
from components.settings import Settings

# Inside the Alloy container.
CONFIG_DIR = "/etc/alloy"
CONFIG_FILE = f"{CONFIG_DIR}/config.alloy"
STORAGE_DIR = "/var/lib/alloy/data"  # positions of every source (a host directory, writable)
DOCKER_CONTAINERS_DIR = "/var/lib/docker/containers"
JOURNAL_DIR = "/var/log/journal"

METRIC_PREFIX = "clipper_nginx_"
REQUESTS_NAME = "http_requests_total"
DURATION_NAME = "http_request_duration_seconds"
WEBSOCKET_NAME = "websocket_connection_duration_seconds"
# Seconds; 0.5 is a boundary so the p95 > 500 ms alert reads an exact bucket.
DURATION_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A WebSocket lives seconds to hours (watch parties).
WEBSOCKET_BUCKETS: tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0)
# Fields of nginx's clipper_json log the pipeline reads.
ACCESS_LOG_FIELDS: tuple[str, ...] = ("time", "status", "request_time", "route", "path")
# Series stay exported a day without traffic, so a quiet night does not reset the counters.
MAX_IDLE = "24h"

# The request groups an operator reads (dashboards), decided from nginx's own routing tables.
ROUTE_GROUPS: tuple[str, ...] = ("api", "websocket", "seo", "spa", "health", "edge")
HEALTH_PATHS = tuple(p for p in BACKEND_EXACT_PATHS if p.startswith("/health"))
SEO_PATHS = tuple(p for p in BACKEND_EXACT_PATHS if p not in HEALTH_PATHS)


def loki_push_url(loki_address: str) -> str:
    """Loki's push endpoint on the monitoring host's private address."""
    return f"http://{loki_address}:{LOKI_PORT}/loki/api/v1/push"


def _alternatives(exact: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> str:
    escaped = [p.replace(".", r"\.") for p in exact]
    return "|".join([*(f"{p}$" for p in escaped), *prefixes])


def route_group_regex() -> str:
    """RE2 over the request path: one named group per route group that a path alone decides
    (the SPA and nginx's own answers are told apart by `route`)."""
    websocket = WEBSOCKET_LOCATION.removeprefix("^").removesuffix("$")
    return (
        f"^(?:(?P<rg_websocket>{websocket}$)|(?P<rg_api>/api/)"
        f"|(?P<rg_health>{_alternatives(HEALTH_PATHS)})"
        f"|(?P<rg_seo>{_alternatives(SEO_PATHS, BACKEND_PREFIXES)}))?"
    )


ROUTE_GROUP_TEMPLATE = (
    "{{ if .rg_websocket }}websocket{{ else if .rg_api }}api{{ else if .rg_health }}health"
    '{{ else if .rg_seo }}seo{{ else if eq .route "frontend" }}spa{{ else }}edge{{ end }}'
)


def _host_labels(job: str) -> dict[str, str | Expr]:
    return {"job": job, "host": Expr('sys.env("HOST")')}


def _stage(kind: str, blocks: Sequence[Block] = (), **attributes: Value) -> Block:
    """A `loki.process` stage block: `stage.<kind> { attributes; nested blocks }`."""
    return Block(f"stage.{kind}", attributes=attributes, blocks=blocks)


def _metric(kind: str, name: str, description: str, **extra: Value) -> Block:
    attributes: dict[str, Value] = {
        "name": name,
        "description": description,
        "prefix": METRIC_PREFIX,
        "max_idle_duration": MAX_IDLE,
        **extra,
    }
    return Block(f"metric.{kind}", attributes=attributes)


def _nginx_pipeline(write: Block) -> list[Block]:
    files = Block(
        "local.file_match",
        "nginx",
        {"path_targets": [{"__path__": NGINX_ACCESS_LOG, **_host_labels("nginx")}]},
    )
    requests = _metric(
        "counter", REQUESTS_NAME, "Requests nginx answered, by status class and route group.",
        match_all=True, action="inc",
    )  # fmt: skip
    duration = _metric(
        "histogram", DURATION_NAME, "nginx request_time: first byte read to last byte sent, s.",
        source="request_time", buckets=list(DURATION_BUCKETS),
    )  # fmt: skip
    websocket = _metric(
        "histogram", WEBSOCKET_NAME, "WebSocket connections' lifetime (nginx request_time), s.",
        source="request_time", buckets=list(WEBSOCKET_BUCKETS),
    )  # fmt: skip
    process = Block(
        "loki.process",
        "nginx",
        {"forward_to": [write.reference("receiver")]},
        [
            _stage("json", expressions={f: f for f in ACCESS_LOG_FIELDS}),
            # "503" -> "5" -> "5xx": a low-cardinality label for the error ratio.
            _stage("regex", source="status", expression="^(?P<status_class>[1-5])"),
            _stage("template", source="status_class", template="{{ .Value }}xx"),
            _stage("regex", source="path", expression=route_group_regex()),
            _stage("template", source="route_group", template=ROUTE_GROUP_TEMPLATE),
            _stage("labels", values={"status_class": "", "route": "", "route_group": ""}),
            _stage("timestamp", source="time", format="RFC3339"),
            _stage("metrics", blocks=[requests]),
            _stage(
                "match", selector='{job="nginx", status_class!="1xx"}', pipeline_name="latency",
                blocks=[_stage("metrics", blocks=[duration])],
            ),
            _stage(
                "match", selector='{job="nginx", status_class="1xx"}', pipeline_name="websocket",
                blocks=[_stage("metrics", blocks=[websocket])],
            ),
        ],
    )  # fmt: skip
    source = _file_source("nginx", files, process)
    return [files, source, process]


def _file_source(label: str, files: Block, process: Block) -> Block:
    """Tail `files` into `process`. A file with no stored position (Alloy's first start on a
    host that already has logs) is read from its end: replaying it would count every old
    request again as if it had just happened."""
    return Block(
        "loki.source.file",
        label,
        {
            "targets": files.reference("targets"),
            "forward_to": [process.reference("receiver")],
            "tail_from_end": True,
        },
    )


def _container_pipeline(write: Block) -> list[Block]:
    files = Block(
        "local.file_match",
        "containers",
        {
            "path_targets": [
                {"__path__": f"{DOCKER_CONTAINERS_DIR}/*/*-json.log", **_host_labels("containers")}
            ]
        },
    )
    process = Block(
        "loki.process",
        "containers",
        {"forward_to": [write.reference("receiver")]},
        [_stage("docker")],
    )
    source = _file_source("containers", files, process)
    return [files, source, process]


def _journal_pipeline(write: Block) -> list[Block]:
    relabel = Block(
        "loki.relabel",
        "journal",
        {"forward_to": []},
        [
            Block(
                "rule",
                attributes={"source_labels": ["__journal__systemd_unit"], "target_label": "unit"},
            )
        ],
    )
    source = Block(
        "loki.source.journal",
        "journal",
        {
            "path": JOURNAL_DIR,
            "max_age": "12h",
            "labels": _host_labels("journal"),
            "relabel_rules": relabel.reference("rules"),
            "forward_to": [write.reference("receiver")],
        },
    )
    return [relabel, source]


def render_alloy_config(settings: Settings, *, loki_address: str) -> str:
    """config.alloy for every app host; `loki_address` is the monitoring host's private IPv4."""
    write = Block(
        "loki.write",
        "loki",
        {"external_labels": {"environment": settings.environment}},
        [
            Block(
                "endpoint",
                attributes={
                    "url": loki_push_url(loki_address),
                    "min_backoff_period": "1s",
                    "max_backoff_period": "1m",
                    "max_backoff_retries": 20,
                },
            )
        ],
    )
    blocks = [
        Block("logging", attributes={"level": "warn", "format": "logfmt"}),
        *_nginx_pipeline(write),
        *_container_pipeline(write),
        *_journal_pipeline(write),
        write,
    ]
    header = (
        f"Grafana Alloy for clipper {settings.environment} app hosts; rendered by\n"
        "components/renderers/alloy.py. The host label comes from $HOST (the systemd unit).\n"
        f"Metrics on :{ALLOY_HTTP_PORT}/metrics."
    )
    return document(blocks, header)
