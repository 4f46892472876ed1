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
    """Validate the deploy.json document; a wrong file stops before anything is touched."""
    where = str(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: not a JSON object")
    schema = doc.get("schema")
    if schema != SCHEMA_VERSION:
        raise ConfigError(
            f"{where}: schema {schema!r}; this clipper-release reads {SCHEMA_VERSION}"
        )
    images = _require(doc, "images", dict, where)
    for key in IMAGE_KEYS:
        if not isinstance(images.get(key), str) or not images[key]:
            raise ConfigError(f"{where}: images.{key} must be an image reference")
    colors_doc = _require(doc, "colors", dict, where)
    colors: dict[str, ColorConfig] = {}
    for color in COLORS:
        entry = _require(colors_doc, color, dict, f"{where}: colors")
        colors[color] = ColorConfig(
            backend_port=_require(entry, "backend_port", int, f"{where}: colors.{color}"),
            frontend_port=_require(entry, "frontend_port", int, f"{where}: colors.{color}"),
            upstreams=_require(entry, "upstreams", str, f"{where}: colors.{color}"),
        )
    paths = _require(doc, "paths", dict, where)
    nginx = _require(doc, "nginx", dict, where)
    health = _require(doc, "health", dict, where)
    containers = _require(doc, "containers", dict, where)
    commands = _require(doc, "commands", dict, where)
    extensions = _require(doc, "database_extensions", list, where)
    for name in extensions:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
            raise ConfigError(f"{where}: database_extensions: {name!r} is not an extension name")
    prefix = _require(containers, "prefix", str, f"{where}: containers")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", prefix):
        raise ConfigError(f"{where}: containers.prefix {prefix!r} is not a container name prefix")
    return Config(
        path=path,
        environment=str(doc.get("environment", "")),
        images={key: images[key] for key in IMAGE_KEYS},
        colors=colors,
        backend_env_file=Path(_require(paths, "backend_env_file", str, f"{where}: paths")),
        db_admin_env_file=Path(_require(paths, "db_admin_env_file", str, f"{where}: paths")),
        state_dir=Path(_require(paths, "state_dir", str, f"{where}: paths")),
        nginx_include=Path(_require(paths, "nginx_include", str, f"{where}: paths")),
        nginx_test=_argv(nginx, "test_command", f"{where}: nginx"),
        nginx_reload=_argv(nginx, "reload_command", f"{where}: nginx"),
        backend_health_path=_require(health, "backend_path", str, f"{where}: health"),
        frontend_health_path=_require(health, "frontend_path", str, f"{where}: health"),
        ready_timeout=float(_require(doc, "ready_timeout_seconds", (int, float), where)),
        drain_seconds=float(_require(doc, "drain_seconds", (int, float), where)),
        stop_timeout=int(_require(doc, "stop_timeout_seconds", int, where)),
        release_keep=int(_require(doc, "release_keep", int, where)),
        extensions=list(extensions),
        prefix=prefix,
        backend_run_args=list(
            _require(containers, "backend_run_args", list, f"{where}: containers")
        ),
        frontend_run_args=list(
            _require(containers, "frontend_run_args", list, f"{where}: containers")
        ),
        frontend_container_port=_require(
            containers, "frontend_container_port", int, f"{where}: containers"
        ),
        port_env=_require(containers, "port_env", str, f"{where}: containers"),
        docker=_argv(commands, "docker", f"{where}: commands"),
        psql=_argv(commands, "psql", f"{where}: commands"),
        **_verify(doc, where),
        **_metrics_file(paths, where),
    )


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
