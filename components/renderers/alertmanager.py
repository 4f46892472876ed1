"""Alertmanager on the monitoring host: who hears about which alert (checklist, "Alert channels").

Routing:
- every alert reaches email (`alertEmails`) through the SMTP relay (`alertSmtpSmarthost`,
  STARTTLS required);
- with `alertSlackChannel` set, critical alerts go to email *and* Slack, warnings to Slack only
  (email stays for what wakes people up);
- critical alerts repeat every hour while they fire, warnings every four hours;
- a host that is down silences the other alerts about that host (its exporters, its CPU...).

The config names no secret: the SMTP password and the Slack webhook URL are read from files
(`smtp_auth_password_file`, `api_url_file`) that reach the host over SSH with mode 0600. The
config itself still travels the same way, next to them.
"""

from __future__ import annotations

from typing import Any

import yaml

from components.settings import Settings

# Inside the Alertmanager container.
CONFIG_DIR = "/etc/alertmanager"
CONFIG_FILE = f"{CONFIG_DIR}/alertmanager.yml"
SECRETS_DIR = "/run/secrets"
SMTP_PASSWORD_FILE = f"{SECRETS_DIR}/smtp-password"
SLACK_WEBHOOK_FILE = f"{SECRETS_DIR}/slack-webhook-url"

EMAIL = "email"
SLACK = "slack"
EMAIL_AND_SLACK = "email-and-slack"


def receivers_for(settings: Settings) -> dict[str, str]:
    """Which receiver each severity reaches (what the routing tests assert)."""
    if settings.alert_slack_channel:
        return {"critical": EMAIL_AND_SLACK, "warning": SLACK}
    return {"critical": EMAIL, "warning": EMAIL}


def render_alertmanager_config(settings: Settings) -> str:
    """alertmanager.yml for the stack (secret values are in files it names, not in it)."""
    email = {
        "to": ", ".join(settings.alert_emails),
        "send_resolved": True,
        "headers": {
            "Subject": f"[clipper {settings.environment}] {{{{ .CommonLabels.alertname }}}}"
        },
    }
    receivers: list[dict[str, Any]] = [{"name": EMAIL, "email_configs": [email]}]
    if settings.alert_slack_channel:
        slack = {
            "api_url_file": SLACK_WEBHOOK_FILE,
            "channel": settings.alert_slack_channel,
            "send_resolved": True,
            "title": (
                f"[clipper {settings.environment}] {{{{ .Status | toUpper }}}}:"
                " {{ .CommonLabels.alertname }}"
            ),
            "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
        }
        receivers += [
            {"name": SLACK, "slack_configs": [slack]},
            {"name": EMAIL_AND_SLACK, "email_configs": [email], "slack_configs": [slack]},
        ]
    by_severity = receivers_for(settings)
    config = {
        "global": {
            "smtp_smarthost": settings.alert_smtp_smarthost,
            "smtp_from": settings.effective_alert_smtp_from,
            "smtp_auth_username": settings.alert_smtp_username,
            "smtp_auth_password_file": SMTP_PASSWORD_FILE,
            "smtp_require_tls": True,
            "resolve_timeout": "5m",
        },
        "route": {
            "receiver": EMAIL,
            "group_by": ["alertname", "host", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "matchers": ['severity="critical"'],
                    "receiver": by_severity["critical"],
                    "repeat_interval": "1h",
                },
                {"matchers": ['severity="warning"'], "receiver": by_severity["warning"]},
            ],
        },
        "inhibit_rules": [
            {
                # A host that is down explains every other alert about it.
                "source_matchers": ['alertname="HostDown"'],
                "target_matchers": ['alertname!="HostDown"'],
                "equal": ["host"],
            },
            {
                # The site is down: its latency and error rate say nothing more.
                "source_matchers": ['alertname="SiteDown"'],
                "target_matchers": ['alertname=~"SlowResponses|HighErrorRate"'],
                "equal": ["environment"],
            },
        ],
        "receivers": receivers,
    }
    header = (
        f"# Alertmanager for clipper {settings.environment}; rendered by"
        " components/renderers/alertmanager.py. Secrets are in files next to it, not here.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=100)
