"""Alertmanager on the monitoring host, checked by amtool: the shipped config is valid, each of
the checklist's alerts reaches the receiver it should (`amtool config routes test
--verify.receivers`), and no secret is in the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.offline.render import host_files
from components.offline.runner import placeholder_secret
from components.renderers import alertmanager, prometheus
from components.renderers.monitoring_units import SLACK_WEBHOOK_URL, SMTP_PASSWORD
from tests.support.monitoring import (
    STACKS,
    monitoring_file,
    role_files,
    run_tool,
    stack_settings,
    write,
)
from tests.support.program import custom_run


def _config(stack: str, tmp_path: Path) -> Path:
    return write(
        tmp_path / "alertmanager.yml",
        monitoring_file(stack, "alertmanager/alertmanager.yml").content,
    )


def _severities(stack: str) -> dict[str, str]:
    rules = yaml.safe_load(
        monitoring_file(stack, f"prometheus/rules/{prometheus.RULES_FILE_NAME}").content
    )
    return {
        r["alert"]: r["labels"]["severity"]
        for g in rules["groups"]
        for r in g["rules"]
        if "alert" in r
    }


def _route(config: Path, receiver: str, *labels: str) -> tuple[int, str]:
    result = run_tool(
        [
            "amtool", "config", "routes", "test", f"--config.file={config}",
            f"--verify.receivers={receiver}", *labels,
        ]
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_config_passes_amtool_check_config(stack: str, tmp_path: Path) -> None:
    result = run_tool(["amtool", "check-config", str(_config(stack, tmp_path))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_refuses_a_route_to_an_unknown_receiver(tmp_path: Path) -> None:
    text = monitoring_file("staging", "alertmanager/alertmanager.yml").content
    config = write(tmp_path / "bad.yml", text.replace("receiver: email\n", "receiver: pager\n", 1))
    assert run_tool(["amtool", "check-config", str(config)]).returncode != 0


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("alert", prometheus.alert_names())
def test_each_alert_reaches_the_receiver_for_its_severity(
    stack: str, alert: str, tmp_path: Path
) -> None:
    severity = _severities(stack)[alert]
    expected = alertmanager.receivers_for(stack_settings(stack))[severity]
    code, output = _route(
        _config(stack, tmp_path), expected, f"alertname={alert}", f"severity={severity}",
        f"environment={stack}", "host=clipper-app-1",
    )  # fmt: skip
    assert code == 0, output


def test_production_pages_slack_and_email_for_critical_and_slack_only_for_warnings(
    tmp_path: Path,
) -> None:
    config = _config("production", tmp_path)
    assert _route(config, "email-and-slack", "alertname=HostDown", "severity=critical")[0] == 0
    assert _route(config, "slack", "alertname=DiskSpaceLow", "severity=warning")[0] == 0
    # The harness can fail: a warning does not reach email in production.
    assert _route(config, "email", "alertname=DiskSpaceLow", "severity=warning")[0] != 0


def test_without_a_slack_channel_everything_goes_to_email(tmp_path: Path) -> None:
    config = _config("staging", tmp_path)
    assert stack_settings("staging").alert_slack_channel == ""
    for labels in (("severity=critical",), ("severity=warning",), ("alertname=Unknown",)):
        assert _route(config, "email", *labels)[0] == 0
    document = yaml.safe_load(config.read_text())
    assert [r["name"] for r in document["receivers"]] == ["email"]


@pytest.mark.parametrize("stack", STACKS)
def test_email_goes_to_every_alert_address_through_the_smtp_relay_with_tls(stack: str) -> None:
    settings = stack_settings(stack)
    document = yaml.safe_load(monitoring_file(stack, "alertmanager/alertmanager.yml").content)
    smtp = document["global"]
    assert smtp["smtp_smarthost"] == settings.alert_smtp_smarthost == "smtp.sendgrid.net:587"
    assert smtp["smtp_auth_username"] == "apikey"
    assert smtp["smtp_from"] == f"alerts@{settings.domain}"
    assert smtp["smtp_require_tls"] is True
    (email,) = next(r for r in document["receivers"] if r["name"] == "email")["email_configs"]
    assert email["to"] == ", ".join(settings.alert_emails)


@pytest.mark.parametrize("stack", STACKS)
def test_the_config_names_secret_files_and_holds_no_secret(stack: str) -> None:
    text = monitoring_file(stack, "alertmanager/alertmanager.yml").content
    document = yaml.safe_load(text)
    assert document["global"]["smtp_auth_password_file"] == alertmanager.SMTP_PASSWORD_FILE
    for key in ("alertSmtpPassword", "alertSlackWebhookUrl"):
        assert placeholder_secret(key) not in text
    files = role_files(stack, "monitoring")
    secret_dir = "/etc/clipper-monitoring/secrets"
    assert files[f"{secret_dir}/{SMTP_PASSWORD}"].mode == "0600"
    slack = stack_settings(stack).alert_slack_channel != ""
    assert (f"{secret_dir}/{SLACK_WEBHOOK_URL}" in files) == slack
    if slack:
        (receiver,) = [r for r in document["receivers"] if r["name"] == "slack"]
        assert receiver["slack_configs"][0]["api_url_file"] == alertmanager.SLACK_WEBHOOK_FILE


def test_a_slack_channel_on_staging_adds_the_slack_receivers(tmp_path: Path) -> None:
    run = custom_run("staging", overrides={"alertSlackChannel": "#staging-alerts"})
    text = host_files(run)["monitoring"]["/etc/clipper-monitoring/alertmanager/alertmanager.yml"]
    config = write(tmp_path / "alertmanager.yml", text.content)
    assert run_tool(["amtool", "check-config", str(config)]).returncode == 0
    assert _route(config, "email-and-slack", "severity=critical")[0] == 0
    assert _route(config, "slack", "severity=warning")[0] == 0


@pytest.mark.parametrize("stack", STACKS)
def test_a_down_host_inhibits_the_other_alerts_about_that_host(stack: str) -> None:
    document = yaml.safe_load(monitoring_file(stack, "alertmanager/alertmanager.yml").content)
    (host_rule,) = [
        r for r in document["inhibit_rules"] if r["source_matchers"] == ['alertname="HostDown"']
    ]
    assert host_rule["equal"] == ["host"]
    assert host_rule["target_matchers"] == ['alertname!="HostDown"']
