"""A wrong deploy.json stops clipper-release with one exact message naming the file and the key,
and when a file has several problems, always the same one first (the order of the checks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clipper import errors, release_config

from components.renderers.deploy_config import render_deploy_config
from tests.support.release_host import settings_for

WHERE = "/etc/clipper/deploy.json"
Fault = Callable[[dict[str, Any]], None]


def rendered() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(render_deploy_config(settings_for("staging")))
    return doc


def message_for(doc: Any) -> str:
    with pytest.raises(errors.ConfigError) as refused:
        release_config.parse_config(doc, Path(WHERE))
    return str(refused.value)


def put(*path: str, value: Any) -> Fault:
    """A fault: the key at `path` set to `value`."""

    def fault(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return fault


def drop(*path: str) -> Fault:
    """A fault: the key at `path` removed."""

    def fault(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return fault


# In the order parse_config checks them: with every fault at once, the first is reported; with
# the first repaired, the second; and so on.
FAULTS_IN_CHECK_ORDER: list[tuple[str, Fault, str]] = [
    ("schema", put("schema", value=2), f"{WHERE}: schema 2; this clipper-release reads 1"),
    ("image", put("images", "migrate", value=""),
     f"{WHERE}: images.migrate must be an image reference"),
    ("colour port", put("colors", "blue", "backend_port", value="8081"),
     f"{WHERE}: colors.blue: 'backend_port' has the wrong type (str)"),
    ("colour", drop("colors", "green"), f"{WHERE}: colors: missing key 'green'"),
    ("section", drop("health"), f"{WHERE}: missing key 'health'"),
    ("section type", put("commands", value=["docker"]),
     f"{WHERE}: 'commands' has the wrong type (list)"),
    ("extension", put("database_extensions", value=["pgcrypto", "Bad-Name"]),
     f"{WHERE}: database_extensions: 'Bad-Name' is not an extension name"),
    ("prefix", put("containers", "prefix", value="-clipper"),
     f"{WHERE}: containers.prefix '-clipper' is not a container name prefix"),
    ("path", drop("paths", "state_dir"), f"{WHERE}: paths: missing key 'state_dir'"),
    ("nginx argv", put("nginx", "reload_command", value=[]),
     f"{WHERE}: nginx: 'reload_command' must be a non-empty list of strings"),
    ("timing", put("ready_timeout_seconds", value=True),
     f"{WHERE}: 'ready_timeout_seconds' has the wrong type (bool)"),
    ("timing int", put("stop_timeout_seconds", value=15.5),
     f"{WHERE}: 'stop_timeout_seconds' has the wrong type (float)"),
    ("container option", put("containers", "frontend_container_port", value="80"),
     f"{WHERE}: containers: 'frontend_container_port' has the wrong type (str)"),
    ("command argv", put("commands", "psql", value=["psql", 5]),
     f"{WHERE}: commands: 'psql' must be a non-empty list of strings"),
    ("verify", put("verify", "answers", value=0),
     f"{WHERE}: verify.answers 0 must be a whole number >= 1"),
    ("metrics file", put("paths", "release_metrics_file", value=7),
     f"{WHERE}: paths: 'release_metrics_file' has the wrong type (int)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "message"),
    [(fault, message) for _, fault, message in FAULTS_IN_CHECK_ORDER],
    ids=[name for name, _, _ in FAULTS_IN_CHECK_ORDER],
)
def test_each_kind_of_wrong_deploy_config_has_its_exact_message(fault: Fault, message: str) -> None:
    doc = rendered()
    fault(doc)
    assert message_for(doc) == message


def test_a_config_with_several_problems_names_them_one_at_a_time_in_a_fixed_order() -> None:
    # Applied last to first, so that each fault's key still exists when it is set (an earlier
    # fault may remove or replace its section).
    faults = [(fault, message) for _, fault, message in FAULTS_IN_CHECK_ORDER]
    for first in range(len(faults)):
        doc = rendered()
        for fault, _ in reversed(faults[first:]):
            fault(doc)
        assert message_for(doc) == faults[first][1], f"with faults {first}.. applied"


@pytest.mark.parametrize("doc", [[], "deploy", None, 1])
def test_a_config_that_is_not_an_object_is_refused(doc: Any) -> None:
    assert message_for(doc) == f"{WHERE}: not a JSON object"


def test_the_rendered_config_parses_and_keeps_only_the_known_images() -> None:
    doc = rendered()
    doc["images"]["extra"] = "ghcr.io/org/clipper/extra:v1"
    config = release_config.parse_config(doc, Path(WHERE))
    assert sorted(config.images) == sorted(release_config.IMAGE_KEYS)
    assert config.state_dir == Path("/var/lib/clipper")
    assert config.stop_timeout == 15 and isinstance(config.ready_timeout, float)
    assert config.verify_header == "X-Clipper-Upstream"
