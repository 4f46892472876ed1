"""Who is alerted and when: recipients, Slack, resource thresholds, and the SMTP relay
Alertmanager mails through."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from components.settings.checks import Email, email
from components.settings.concern import Concern


def _optional_email(value: str) -> str:
    return email(value) if value else value


def _smarthost(value: str) -> str:
    if not re.match(r"^[a-z0-9.-]+\.[a-z]{2,63}:[0-9]{1,5}$", value):
        raise ValueError("allowed: an SMTP relay as host:port, such as smtp.sendgrid.net:587")
    return value


class AlertSettings(Concern):
    """Alert recipients, channels, thresholds and mail delivery."""

    alert_emails: list[Email] = Field(min_length=1, description="Who receives alerts.")
    alert_slack_channel: str = Field(
        description="Slack channel for alerts (needs secret alertSlackWebhookUrl)."
    )
    alert_cpu_percent: int = Field(ge=1, le=100, description="CPU alert threshold, %.")
    alert_memory_percent: int = Field(ge=1, le=100, description="Memory alert threshold, %.")
    alert_disk_percent: int = Field(ge=1, le=100, description="Disk-used alert threshold, %.")
    alert_smtp_smarthost: Annotated[str, AfterValidator(_smarthost)] = Field(
        description="SMTP relay (host:port, STARTTLS) that Alertmanager sends alert email through."
    )
    alert_smtp_from: Annotated[str, AfterValidator(_optional_email)] = Field(
        description="Sender of alert email; empty means alerts@<domain>."
    )
    alert_smtp_username: str = Field(
        min_length=1, description="SMTP user name (password: secret alertSmtpPassword)."
    )
