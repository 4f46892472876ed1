"""The CI workflows as data: a checked promotion, notifications and the daily drift check.

actionlint and the workflow schema (scripts/test.sh) check that the files are valid; these
tests check that they do what the README promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def workflow(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    return {("on" if key is True else key): value for key, value in doc.items()}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in steps(job) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    return step


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_every_workflow_uses_pulumi_actions_v7(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    uses = [line.split("uses:", 1)[1].strip() for line in text.splitlines() if "uses:" in line]
    assert all(u == "pulumi/actions@v7" for u in uses if u.startswith("pulumi/actions@"))


def test_production_waits_for_the_staging_smoke_test_and_its_own_preview() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    staging = [s.get("run", s.get("uses")) for s in steps(jobs["staging"])]
    up = staging.index("pulumi/actions@v7")
    assert staging.index("bash scripts/smoke-test.sh staging") > up
    preview = jobs["production-preview"]
    assert preview["needs"] == "staging" and "environment" not in preview
    with_ = pulumi_step(preview)["with"]
    assert with_["command"] == "preview" and with_["stack-name"] == "production"
    assert with_["diff"] is True and with_["comment-on-summary"] is True
    production = jobs["production"]
    assert production["needs"] == "production-preview"
    assert production["environment"]["name"] == "production"  # the reviewers' approval
    assert pulumi_step(production)["with"]["command"] == "up"


@pytest.mark.parametrize("job", ["staging", "production"])
def test_every_up_tells_the_team_whatever_happened(job: str) -> None:
    (notify,) = [
        s for s in steps(workflow("deploy.yml")["jobs"][job]) if "notify" in s.get("run", "")
    ]
    assert notify["if"] == "always()"
    assert notify["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    assert "secrets." not in notify["run"], "the webhook goes by environment, never argv"
    for flag in ("--stack", "--result", "--release-images", "--actor", "--link"):
        assert flag in notify["run"]


def test_drift_is_checked_daily_on_both_stacks_and_reported() -> None:
    doc = workflow("drift.yml")
    (schedule,) = doc["on"]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday) == ("*", "*", "*") and hour.isdigit() and minute.isdigit()
    job = doc["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "production"]
    with_ = pulumi_step(job)["with"]
    assert with_["command"] == "preview"
    assert with_["expect-no-changes"] is True and with_["refresh"] is True
    (notify,) = [s for s in steps(job) if "notify" in s.get("run", "")]
    assert notify["if"] == "failure()" and "--result drift" in notify["run"]
