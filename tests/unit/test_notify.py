"""The team notification after each `pulumi up` and on drift (components/fleet/notify.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from components.fleet import notify

IMAGES = json.dumps({"backend": "ghcr.io/x/backend:v2@sha256:ab", "frontend": "f:v2@sha256:cd"})
ARGS = ["--stack", "production", "--result", "success", "--release-images", IMAGES,
        "--actor", "octocat", "--link", "https://github.com/o/r/actions/runs/1"]  # fmt: skip


def test_the_message_names_stack_release_actor_result_and_link() -> None:
    message = notify.slack_message(
        stack="production", action="pulumi up", result="failure",
        release=notify.release_of(IMAGES), actor="octocat", link="https://x/runs/1",
    )  # fmt: skip
    text = json.dumps(message)
    for expected in ("production", "failure", "backend ghcr.io/x/backend:v2@sha256:ab",
                     "frontend f:v2@sha256:cd", "octocat", "<https://x/runs/1|"):  # fmt: skip
        assert expected in text
    assert message["blocks"][0]["text"]["text"].startswith(":x: pulumi up of *production*")


def test_no_outputs_means_an_unknown_release_not_a_crash() -> None:
    assert notify.release_of("") == "unknown (no releaseImages output)"
    assert notify.release_of("not json") == "unknown (no releaseImages output)"


def test_without_the_secret_nothing_is_sent_and_ci_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(notify.WEBHOOK_ENV, raising=False)
    assert notify.main(ARGS) == 0
    assert "no SLACK_WEBHOOK_URL secret set; not notifying" in capsys.readouterr().out


def test_the_webhook_comes_from_the_environment_and_never_shows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://hooks.slack.com/services/T000/B000/very-secret-token"
    monkeypatch.setenv(notify.WEBHOOK_ENV, url)
    sent: list[tuple[str, Mapping[str, Any]]] = []

    def slack_stand_in(to: str, payload: Mapping[str, Any], timeout: float = 15.0) -> int:
        """STAND-IN for Slack's webhook endpoint (no internet in tests): records the post."""
        sent.append((to, payload))
        return 200

    monkeypatch.setattr(notify, "post", slack_stand_in)
    assert notify.main(ARGS) == 0
    assert sent[0][0] == url and "production" in sent[0][1]["text"]
    assert "very-secret-token" not in capsys.readouterr().out

    def slack_down(to: str, payload: Mapping[str, Any], timeout: float = 15.0) -> int:
        raise OSError(f"connection refused to {to}")

    monkeypatch.setattr(notify, "post", slack_down)
    assert notify.main(ARGS) == 1
    captured = capsys.readouterr()
    assert "Slack did not take the message: OSError" in captured.err
    assert "very-secret-token" not in captured.out + captured.err


def test_only_a_slack_webhook_url_is_posted_to() -> None:
    with pytest.raises(ValueError, match="is not a Slack webhook URL"):
        notify.post("http://127.0.0.1:9/x", {"text": "x"})
