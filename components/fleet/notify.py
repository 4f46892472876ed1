"""`python -m components notify`: tell the team what a `pulumi up` (or a drift check) did.

CI calls it after each `up` and on drift. The Slack incoming-webhook URL is a secret: it is read
from the environment (`SLACK_WEBHOOK_URL`, a repository secret), never from the command line,
and with none set the command says so and succeeds (the notification is optional).

    python -m components notify --stack production --result success \
        --release-images '{"backend": "...@sha256:..."}' --actor octocat --link URL
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

WEBHOOK_ENV = "SLACK_WEBHOOK_URL"
_MARKS = {"success": ":white_check_mark:", "drift": ":warning:", "cancelled": ":grey_question:"}
SLACK_HOST = "hooks.slack.com"


def release_of(images_json: str) -> str:
    """The shipped release in words: the backend and frontend references (tag@digest)."""
    try:
        images = json.loads(images_json) if images_json.strip() else {}
    except ValueError:
        return "unknown (no releaseImages output)"
    if not isinstance(images, dict) or not images:
        return "unknown (no releaseImages output)"
    return ", ".join(f"{role} {images[role]}" for role in ("backend", "frontend") if role in images)


def slack_message(
    *, stack: str, action: str, result: str, release: str, actor: str, link: str
) -> dict[str, Any]:
    """The Slack payload: one line a person reads in the channel, and the fields below it."""
    mark = _MARKS.get(result, ":x:")
    title = f"{mark} {action} of *{stack}*: {result}"
    fields = {"Stack": stack, "Result": result, "Release": release, "By": actor}
    return {
        "text": f"{action} of {stack}: {result} ({release}) by {actor} {link}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": title}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                    for name, value in fields.items()
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|The workflow run>"}},
        ],
    }


def post(url: str, payload: Mapping[str, Any], timeout: float = 15.0) -> int:
    """POST the payload as JSON; the HTTP status (a failure raises, naming no URL)."""
    if not url.startswith(f"https://{SLACK_HOST}/"):
        raise ValueError(f"{WEBHOOK_ENV} is not a Slack webhook URL (https://{SLACK_HOST}/...)")
    request = urllib.request.Request(  # noqa: S310 (https to Slack only, checked above)
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return int(response.status)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components notify", description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--action", default="pulumi up", help="what ran (default: pulumi up)")
    parser.add_argument("--result", required=True, help="success, failure, cancelled, drift")
    parser.add_argument("--release-images", default="", help="the releaseImages output (JSON)")
    parser.add_argument("--actor", required=True)
    parser.add_argument("--link", required=True, help="the workflow run's URL")
    args = parser.parse_args(argv)
    payload = slack_message(
        stack=args.stack, action=args.action, result=args.result,
        release=release_of(args.release_images), actor=args.actor, link=args.link,
    )  # fmt: skip
    url = os.environ.get(WEBHOOK_ENV, "")
    if not url:
        print(f"notify: no {WEBHOOK_ENV} secret set; not notifying: {payload['text']}")
        return 0
    try:
        status = post(url, payload)
    except (OSError, ValueError) as err:
        # Never the URL: it is the secret. The deploy's own result stands either way.
        print(f"notify: Slack did not take the message: {type(err).__name__}", file=sys.stderr)
        return 1
    print(f"notify: sent to Slack (HTTP {status}): {payload['text']}")
    return 0
