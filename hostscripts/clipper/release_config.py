"""`/etc/clipper/deploy.json` (schema 1, components/renderers/deploy_config.py), validated:
a wrong file stops before anything is touched, naming the file and the key."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

COLORS: tuple[str, str] = ("blue", "green")
ROLES: tuple[str, str] = ("backend", "frontend")
IMAGE_KEYS: tuple[str, ...] = ("backend", "frontend", "migrations", "migrate")
CONFIG_ENV = "CLIPPER_DEPLOY_CONFIG"
DEFAULT_CONFIG = "/etc/clipper/deploy.json"
SCHEMA_VERSION = 1
# Consecutive answers through nginx, with the new release, before the old colour may stop.
VERIFY_ANSWERS = 5


@dataclass(frozen=True)
class ColorConfig:
    backend_port: int
    frontend_port: int
    upstreams: str


@dataclass(frozen=True)
class Config:
    """deploy.json, validated."""

    path: Path
    environment: str
    images: dict[str, str]
    colors: dict[str, ColorConfig]
    backend_env_file: Path
    db_admin_env_file: Path
    state_dir: Path
    nginx_include: Path
    nginx_test: list[str]
    nginx_reload: list[str]
    backend_health_path: str
    frontend_health_path: str
    ready_timeout: float
    drain_seconds: float
    stop_timeout: int
    release_keep: int
    extensions: list[str]
    prefix: str
    backend_run_args: list[str]
    frontend_run_args: list[str]
    frontend_container_port: int
    port_env: str
    docker: list[str]
    psql: list[str]
    # Optional (absent: the deploy checks each colour directly only): a URL through nginx whose
    # answer names the serving release, for example the backend's version endpoint.
    verify_url: str | None = None
    verify_answers: int = VERIFY_ANSWERS
    # When set, an answer through nginx counts when this header names the colour's backend
    # (127.0.0.1:PORT); otherwise when its body equals the colour's own answer.
    verify_header: str | None = None
    # Optional `paths.release_metrics_file`: node_exporter's textfile (clipper-backup's dir).
    metrics_file: Path = Path("/var/lib/prometheus/node-exporter/clipper_release.prom")

    def container(self, color: str, role: str) -> str:
        return f"{self.prefix}-{color}-{role}"

    @property
    def runtime(self) -> dict[str, Any]:
        """How containers run, colour-independent: part of the release fingerprint."""
        return {
            "backend_run_args": self.backend_run_args,
            "frontend_run_args": self.frontend_run_args,
            "frontend_container_port": self.frontend_container_port,
            "port_env": self.port_env,
        }


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _argv(doc: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = _require(doc, key, list, where)
    if not value or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: {key!r} must be a non-empty list of strings")
    return list(value)


def parse_config(doc: Any, path: Path) -> Config:
    """Validate the deploy.json document; a wrong file stops before anything is touched. The
    checks run in a fixed order, so a file with several problems always names the same first."""
    where = str(path)
    _check_schema(doc, where)
    images = _images(doc, where)
    colors = _colors(doc, where)
    paths, nginx, health, containers, commands = _sections(doc, where)
    extensions = _extensions(doc, where)
    prefix = _container_prefix(containers, where)
    # Keyword arguments are evaluated left to right: this order is the order of the checks.
    return Config(
        path=path,
        environment=str(doc.get("environment", "")),
        images=images,
        colors=colors,
        **_paths(paths, where),
        **_nginx_commands(nginx, where),
        **_health_paths(health, where),
        **_timings(doc, where),
        extensions=extensions,
        prefix=prefix,
        **_container_options(containers, where),
        **_host_commands(commands, where),
        **_verify(doc, where),
        **_metrics_file(paths, where),
    )


def _check_schema(doc: Any, where: str) -> None:
    """The document is an object of the schema this script reads."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: not a JSON object")
    schema = doc.get("schema")
    if schema != SCHEMA_VERSION:
        raise ConfigError(
            f"{where}: schema {schema!r}; this clipper-release reads {SCHEMA_VERSION}"
        )


def _images(doc: Mapping[str, Any], where: str) -> dict[str, str]:
    """`images`: a reference for each of IMAGE_KEYS (other keys are dropped)."""
    images = _require(doc, "images", dict, where)
    for key in IMAGE_KEYS:
        if not isinstance(images.get(key), str) or not images[key]:
            raise ConfigError(f"{where}: images.{key} must be an image reference")
    return {key: images[key] for key in IMAGE_KEYS}


def _colors(doc: Mapping[str, Any], where: str) -> dict[str, ColorConfig]:
    """`colors`: the ports and nginx upstreams of blue and green."""
    colors_doc = _require(doc, "colors", dict, where)
    colors: dict[str, ColorConfig] = {}
    for color in COLORS:
        entry = _require(colors_doc, color, dict, f"{where}: colors")
        colors[color] = ColorConfig(
            backend_port=_require(entry, "backend_port", int, f"{where}: colors.{color}"),
            frontend_port=_require(entry, "frontend_port", int, f"{where}: colors.{color}"),
            upstreams=_require(entry, "upstreams", str, f"{where}: colors.{color}"),
        )
    return colors


def _sections(doc: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any], ...]:
    """The sections `paths`, `nginx`, `health`, `containers` and `commands`, in that order."""
    return tuple(
        _require(doc, section, dict, where)
        for section in ("paths", "nginx", "health", "containers", "commands")
    )


def _extensions(doc: Mapping[str, Any], where: str) -> list[str]:
    """`database_extensions`: plain PostgreSQL extension names."""
    extensions = _require(doc, "database_extensions", list, where)
    for name in extensions:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
            raise ConfigError(f"{where}: database_extensions: {name!r} is not an extension name")
    return list(extensions)


def _container_prefix(containers: Mapping[str, Any], where: str) -> str:
    """`containers.prefix`: what every container name starts with."""
    prefix: str = _require(containers, "prefix", str, f"{where}: containers")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", prefix):
        raise ConfigError(f"{where}: containers.prefix {prefix!r} is not a container name prefix")
    return prefix


def _paths(paths: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The required files and directories of `paths`."""
    return {
        "backend_env_file": Path(_require(paths, "backend_env_file", str, f"{where}: paths")),
        "db_admin_env_file": Path(_require(paths, "db_admin_env_file", str, f"{where}: paths")),
        "state_dir": Path(_require(paths, "state_dir", str, f"{where}: paths")),
        "nginx_include": Path(_require(paths, "nginx_include", str, f"{where}: paths")),
    }


def _nginx_commands(nginx: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`nginx`: the argv that tests the configuration and the one that reloads it."""
    return {
        "nginx_test": _argv(nginx, "test_command", f"{where}: nginx"),
        "nginx_reload": _argv(nginx, "reload_command", f"{where}: nginx"),
    }


def _health_paths(health: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`health`: the readiness paths of the backend and the frontend."""
    return {
        "backend_health_path": _require(health, "backend_path", str, f"{where}: health"),
        "frontend_health_path": _require(health, "frontend_path", str, f"{where}: health"),
    }


def _timings(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The top-level waits and counts: readiness, drain, stop timeout, releases kept."""
    return {
        "ready_timeout": float(_require(doc, "ready_timeout_seconds", (int, float), where)),
        "drain_seconds": float(_require(doc, "drain_seconds", (int, float), where)),
        "stop_timeout": int(_require(doc, "stop_timeout_seconds", int, where)),
        "release_keep": int(_require(doc, "release_keep", int, where)),
    }


def _container_options(containers: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`containers`: how the backend and frontend run (part of the release fingerprint)."""
    at = f"{where}: containers"
    return {
        "backend_run_args": list(_require(containers, "backend_run_args", list, at)),
        "frontend_run_args": list(_require(containers, "frontend_run_args", list, at)),
        "frontend_container_port": _require(containers, "frontend_container_port", int, at),
        "port_env": _require(containers, "port_env", str, at),
    }


def _host_commands(commands: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`commands`: the docker and psql argv prefixes."""
    return {
        "docker": _argv(commands, "docker", f"{where}: commands"),
        "psql": _argv(commands, "psql", f"{where}: commands"),
    }


def _metrics_file(paths: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The optional `paths.release_metrics_file` (tests point it into a temp dir)."""
    if "release_metrics_file" not in paths:
        return {}
    return {"metrics_file": Path(_require(paths, "release_metrics_file", str, f"{where}: paths"))}


def _verify(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The optional `verify` section: {"url": "http://127.0.0.1:PORT/PATH", "answers": N,
    "upstream_header": NAME (optional)}."""
    if "verify" not in doc:
        return {}
    verify = _require(doc, "verify", dict, where)
    url = _require(verify, "url", str, f"{where}: verify")
    if not re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/\S*", url):
        raise ConfigError(f"{where}: verify.url {url!r} must be http://127.0.0.1:PORT/PATH")
    answers = verify.get("answers", VERIFY_ANSWERS)
    if not isinstance(answers, int) or isinstance(answers, bool) or answers < 1:
        raise ConfigError(f"{where}: verify.answers {answers!r} must be a whole number >= 1")
    header = verify.get("upstream_header")
    if header is not None and (
        not isinstance(header, str) or not re.fullmatch(r"[A-Za-z-]+", header)
    ):
        raise ConfigError(f"{where}: verify.upstream_header {header!r} must be a header name")
    return {"verify_url": url, "verify_answers": answers, "verify_header": header}


def load_config(path: Path | None = None) -> Config:
    path = path or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: the Pulumi program installs it") from None
    except (OSError, ValueError) as exc:
        # A truncated file (a full disk, a killed copy) lands here: name it, no traceback.
        raise ConfigError(f"cannot read {path}: {exc}; the Pulumi program re-installs it") from None
    return parse_config(doc, path)
