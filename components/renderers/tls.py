"""TLS on a single host (edge_entry "reserved-ip"): Let's Encrypt by certbot, HTTP-01 through
nginx's ACME webroot.

The life of the certificate, and the file that does each step:
1. Before any certificate exists nginx must still start: `clipper-tls-placeholder` puts a
   self-signed certificate where certbot's lineage will be. It runs from cloud-init and before
   every nginx start (a drop-in), so no boot ever fails on a missing certificate.
2. Issuance waits for DNS: `clipper-tls-issue.timer` runs `clipper-tls-issue` every few minutes
   until the lineage exists. The script first proves that http://<domain>/ reaches this very
   nginx (a random token in the webroot), so Let's Encrypt is only asked when HTTP-01 can pass
   (failed validations count against its rate limits). It parks the placeholder (certbot will
   not write over a live dir it does not own), runs `certbot certonly --webroot`, and puts the
   placeholder back if certbot fails. It exits EX_TEMPFAIL (75) while the domain does not
   point here yet (the timer retries), 1 when certbot failed (the placeholder stays).
3. Renewal: `clipper-tls-renew.timer` runs `certbot renew` twice a day; the deploy hook
   `clipper-tls-reload-nginx` checks the config and reloads nginx when a certificate changed.
   (certbot stores the same hook in the lineage's renewal config at issuance.)

The three scripts are static files (scripts/clipper-tls-*.sh), the same for every stack; the
placeholder and the issue script read the domain and certbot's paths from TLS_CONFIG beside
them.

No secret is involved: the ACME account key and the certificate's private key are made on the
host and never leave it.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.host.files import HostFile
from components.host.layout import ACME_WEBROOT, under_root
from components.renderers.host_scripts import config_beside, render_script_config, script_text
from components.settings import Settings

LETSENCRYPT_DIR = "/etc/letsencrypt"
LETSENCRYPT_WORK_DIR = "/var/lib/letsencrypt"
LETSENCRYPT_LOGS_DIR = "/var/log/letsencrypt"
CERTBOT = "/usr/bin/certbot"

PLACEHOLDER_SCRIPT = "/usr/local/sbin/clipper-tls-placeholder"
ISSUE_SCRIPT = "/usr/local/sbin/clipper-tls-issue"
RELOAD_HOOK = "/usr/local/sbin/clipper-tls-reload-nginx"
# The placeholder's and the issue script's per-stack data, beside them.
TLS_CONFIG = config_beside(ISSUE_SCRIPT, "clipper-tls.env")

SYSTEMD_DIR = "/etc/systemd/system"
ISSUE_UNIT = "clipper-tls-issue"
RENEW_UNIT = "clipper-tls-renew"
NGINX_DROP_IN = f"{SYSTEMD_DIR}/nginx.service.d/clipper-tls-placeholder.conf"

# Exit status of the issue script while http://<domain>/ does not reach this host yet.
EX_TEMPFAIL = 75
# Days the placeholder is valid: long enough for any DNS change; browsers reject it anyway.
PLACEHOLDER_DAYS = 90
# Marks a live dir as the placeholder, which the issue script may park.
PLACEHOLDER_MARKER = "CLIPPER_PLACEHOLDER"


@dataclass(frozen=True)
class CertificatePaths:
    """Where nginx reads the site's certificate: certbot's live dir for the domain."""

    live_dir: str
    fullchain: str
    privkey: str
    chain: str
    renewal_conf: str


def certificate_paths(domain: str, root: str = "/") -> CertificatePaths:
    """certbot's lineage paths for `domain` (relocated under `root` for tests)."""
    le_dir = under_root(LETSENCRYPT_DIR, root)
    live = f"{le_dir}/live/{domain}"
    return CertificatePaths(
        live_dir=live,
        fullchain=f"{live}/fullchain.pem",
        privkey=f"{live}/privkey.pem",
        chain=f"{live}/chain.pem",
        renewal_conf=f"{le_dir}/renewal/{domain}.conf",
    )


_HEADER = "# Rendered by components/renderers/tls.py; do not edit on the host."


def render_tls_script_config(settings: Settings, root: str = "/", http_port: int = 80) -> str:
    """TLS_CONFIG, what the placeholder and issue scripts (scripts/clipper-tls-*.sh) read: the
    domain, the ACME email and certbot's paths (relocated under `root` for tests); `http_port` is
    where nginx serves the challenge (80 on a host; tests use a free port)."""
    cert = certificate_paths(settings.domain, root)
    return render_script_config(
        f"Sourced by {PLACEHOLDER_SCRIPT} and {ISSUE_SCRIPT}; rendered by"
        " components/renderers/tls.py.",
        {
            "DOMAIN": settings.domain,
            "EMAIL": settings.acme_email,
            "LE_DIR": under_root(LETSENCRYPT_DIR, root),
            "WORK_DIR": under_root(LETSENCRYPT_WORK_DIR, root),
            "LOGS_DIR": under_root(LETSENCRYPT_LOGS_DIR, root),
            "LIVE_DIR": cert.live_dir,
            "RENEWAL_CONF": cert.renewal_conf,
            "WEBROOT": under_root(ACME_WEBROOT, root),
            "RELOAD_HOOK": under_root(RELOAD_HOOK, root),
            "HTTP_PORT": http_port,
            "EX_TEMPFAIL": EX_TEMPFAIL,
            "PLACEHOLDER_DAYS": PLACEHOLDER_DAYS,
            "PLACEHOLDER_MARKER": PLACEHOLDER_MARKER,
            "RENEW_UNIT": RENEW_UNIT,
        },
    )


def render_nginx_drop_in(root: str = "/") -> str:
    """A drop-in for nginx.service: the placeholder before the config test, on every start."""
    return f"""\
{_HEADER}
# nginx must start even before Let's Encrypt has issued: make sure a certificate exists first.
# The package's own ExecStartPre (the config test) is repeated after it, in this order.
[Service]
ExecStartPre=
ExecStartPre={under_root(PLACEHOLDER_SCRIPT, root)}
ExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'
"""


def render_issue_service(settings: Settings, root: str = "/") -> str:
    """The one-shot issuance unit; skipped once the lineage exists."""
    cert = certificate_paths(settings.domain, root)
    return f"""\
{_HEADER}
[Unit]
Description=Issue the Let's Encrypt certificate for {settings.domain} once DNS points here
After=network-online.target nginx.service
Wants=network-online.target
ConditionPathExists=!{cert.renewal_conf}

[Service]
Type=oneshot
ExecStart={under_root(ISSUE_SCRIPT, root)}
# {EX_TEMPFAIL}: the domain does not reach this host yet; the timer tries again.
SuccessExitStatus={EX_TEMPFAIL}
PrivateTmp=true
"""


def render_issue_timer(settings: Settings) -> str:
    """Retries issuance every 10 minutes until it succeeds (then the service is skipped)."""
    return f"""\
{_HEADER}
[Unit]
Description=Retry issuing the certificate for {settings.domain} until DNS points here

[Timer]
OnBootSec=1min
OnUnitActiveSec=10min
RandomizedDelaySec=30s
Unit={ISSUE_UNIT}.service

[Install]
WantedBy=timers.target
"""


def render_renew_service(settings: Settings, root: str = "/") -> str:
    """`certbot renew`: renews within 30 days of expiry and runs the deploy hook."""
    cert = certificate_paths(settings.domain, root)
    return f"""\
{_HEADER}
[Unit]
Description=Renew the Let's Encrypt certificate for {settings.domain} and reload nginx
After=network-online.target nginx.service
Wants=network-online.target
ConditionPathExists={cert.renewal_conf}

[Service]
Type=oneshot
ExecStart={CERTBOT} renew --quiet --no-random-sleep-on-renew \
  --config-dir {under_root(LETSENCRYPT_DIR, root)} \
  --work-dir {under_root(LETSENCRYPT_WORK_DIR, root)} \
  --logs-dir {under_root(LETSENCRYPT_LOGS_DIR, root)} \
  --deploy-hook {under_root(RELOAD_HOOK, root)}
PrivateTmp=true
"""


def render_renew_timer(settings: Settings) -> str:
    """Twice a day at a random minute, as Let's Encrypt asks; catches up after downtime."""
    return f"""\
{_HEADER}
[Unit]
Description=Check twice a day whether the certificate for {settings.domain} needs renewal

[Timer]
OnCalendar=*-*-* 00,12:00:00
RandomizedDelaySec=1h
Persistent=true
Unit={RENEW_UNIT}.service

[Install]
WantedBy=timers.target
"""


def tls_host_files(settings: Settings, *, root: str = "/", http_port: int = 80) -> list[HostFile]:
    """Every TLS file of a host that ends TLS itself (paths are host paths; `root` and
    `http_port` only change what the files say, for tests)."""
    return [
        HostFile(TLS_CONFIG, render_tls_script_config(settings, root, http_port)),
        HostFile(PLACEHOLDER_SCRIPT, script_text("clipper-tls-placeholder"), "0755"),
        HostFile(ISSUE_SCRIPT, script_text("clipper-tls-issue"), "0755"),
        HostFile(RELOAD_HOOK, script_text("clipper-tls-reload-nginx"), "0755"),
        HostFile(NGINX_DROP_IN, render_nginx_drop_in(root)),
        HostFile(f"{SYSTEMD_DIR}/{ISSUE_UNIT}.service", render_issue_service(settings, root)),
        HostFile(f"{SYSTEMD_DIR}/{ISSUE_UNIT}.timer", render_issue_timer(settings)),
        HostFile(f"{SYSTEMD_DIR}/{RENEW_UNIT}.service", render_renew_service(settings, root)),
        HostFile(f"{SYSTEMD_DIR}/{RENEW_UNIT}.timer", render_renew_timer(settings)),
    ]


def tls_bootstrap_commands() -> list[str]:
    """One-line commands for first boot, after the files are written: a certificate for nginx
    to start with, nginx on the site config, the timers, and a first issuance attempt that does
    not wait (nor fail the boot) when DNS does not point here yet."""
    return [
        "systemctl daemon-reload",
        PLACEHOLDER_SCRIPT,
        "nginx -t -q",
        "systemctl reload-or-restart nginx.service",
        # One renewer: ours (with the deploy hook); the package's timer would be a second one.
        "systemctl disable --now certbot.timer 2>/dev/null || true",
        f"systemctl enable --now {RENEW_UNIT}.timer {ISSUE_UNIT}.timer",
        f"systemctl start --no-block {ISSUE_UNIT}.service",
    ]
