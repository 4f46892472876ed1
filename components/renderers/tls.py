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
   placeholder back if certbot fails.
3. Renewal: `clipper-tls-renew.timer` runs `certbot renew` twice a day; the deploy hook
   `clipper-tls-reload-nginx` checks the config and reloads nginx when a certificate changed.
   (certbot stores the same hook in the lineage's renewal config at issuance.)

No secret is involved: the ACME account key and the certificate's private key are made on the
host and never leave it.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.host_files import HostFile
from components.host_layout import ACME_WEBROOT, under_root
from components.settings import Settings

LETSENCRYPT_DIR = "/etc/letsencrypt"
LETSENCRYPT_WORK_DIR = "/var/lib/letsencrypt"
LETSENCRYPT_LOGS_DIR = "/var/log/letsencrypt"
CERTBOT = "/usr/bin/certbot"

PLACEHOLDER_SCRIPT = "/usr/local/sbin/clipper-tls-placeholder"
ISSUE_SCRIPT = "/usr/local/sbin/clipper-tls-issue"
RELOAD_HOOK = "/usr/local/sbin/clipper-tls-reload-nginx"

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


def render_placeholder_script(settings: Settings, root: str = "/") -> str:
    """`clipper-tls-placeholder`: a self-signed certificate for the domain, only when there is
    no certificate at all, so nginx can start (and serve the ACME challenge) before issuance."""
    cert = certificate_paths(settings.domain, root)
    return f"""\
#!/bin/bash
{_HEADER}
# Give nginx a certificate to start with until Let's Encrypt issues the real one: a self-signed
# placeholder in certbot's live dir. Does nothing when a certificate is there. Safe to re-run.
set -euo pipefail

readonly DOMAIN={settings.domain}
readonly LE_DIR={under_root(LETSENCRYPT_DIR, root)}
readonly LIVE_DIR={cert.live_dir}
readonly RENEWAL_CONF={cert.renewal_conf}
readonly WEBROOT={under_root(ACME_WEBROOT, root)}

log() {{ printf 'clipper-tls-placeholder: %s\\n' "$*" >&2; }}

# nginx serves the ACME challenge from here (as www-data: world-readable).
install -d -m 0755 "${{WEBROOT}}/.well-known/acme-challenge"

complete=yes
for name in fullchain.pem privkey.pem chain.pem; do
  [[ -s ${{LIVE_DIR}}/${{name}} ]] || complete=no
done
if [[ ${{complete}} == yes ]]; then
  exit 0
fi
if [[ -e ${{RENEWAL_CONF}} ]]; then
  log "certbot's lineage for ${{DOMAIN}} is incomplete; not replacing it (run: certbot renew)"
  exit 1
fi

install -d -m 0755 "${{LE_DIR}}"
install -d -m 0700 "${{LE_DIR}}/live"
umask 077
tmp=$(mktemp -d "${{LE_DIR}}/live/.placeholder.XXXXXX")
trap 'rm -rf "${{tmp}}"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\
  -days {PLACEHOLDER_DAYS} -subj "/CN=${{DOMAIN}}" \\
  -addext "subjectAltName=DNS:${{DOMAIN}},DNS:www.${{DOMAIN}}" \\
  -keyout "${{tmp}}/privkey.pem" -out "${{tmp}}/fullchain.pem" 2>/dev/null
cp "${{tmp}}/fullchain.pem" "${{tmp}}/chain.pem"
cp "${{tmp}}/fullchain.pem" "${{tmp}}/cert.pem"
: >"${{tmp}}/{PLACEHOLDER_MARKER}"
chmod 0755 "${{tmp}}"
chmod 0644 "${{tmp}}/fullchain.pem" "${{tmp}}/chain.pem" "${{tmp}}/cert.pem"

# Only a placeholder (or debris) can be here: certbot's own lineage has a renewal config.
rm -rf "${{LIVE_DIR}}"
mv "${{tmp}}" "${{LIVE_DIR}}"
trap - EXIT
log "self-signed placeholder for ${{DOMAIN}} in ${{LIVE_DIR}} (until Let's Encrypt issues)"
"""


def render_issue_script(settings: Settings, root: str = "/", http_port: int = 80) -> str:
    """`clipper-tls-issue`: issue the certificate once http://<domain>/ reaches this host.

    Exits 0 when the certificate exists or was issued, EX_TEMPFAIL (75) while the domain does not
    point here yet (the timer retries), 1 when certbot failed (the placeholder stays).
    `http_port` is where nginx serves the challenge (80 on a host; tests use a free port).
    """
    cert = certificate_paths(settings.domain, root)
    le_dir = under_root(LETSENCRYPT_DIR, root)
    port = "" if http_port == 80 else f":{http_port}"
    return f"""\
#!/bin/bash
{_HEADER}
# Issue the Let's Encrypt certificate for the site once its DNS points at this host. Run by
# {ISSUE_UNIT}.timer until the certificate exists. Safe to re-run, also after a crash.
set -euo pipefail

readonly DOMAIN={settings.domain}
readonly EMAIL={settings.acme_email}
readonly LE_DIR={le_dir}
readonly LIVE_DIR={cert.live_dir}
readonly RENEWAL_CONF={cert.renewal_conf}
readonly PARKED=${{LE_DIR}}/clipper-placeholder-parked
readonly WEBROOT={under_root(ACME_WEBROOT, root)}
readonly CHALLENGE_DIR=${{WEBROOT}}/.well-known/acme-challenge
readonly HOOK={under_root(RELOAD_HOOK, root)}
readonly EX_TEMPFAIL={EX_TEMPFAIL}

log() {{ printf 'clipper-tls-issue: %s\\n' "$*" >&2; }}

install -d -m 0755 "${{LE_DIR}}"
exec 9>"${{LE_DIR}}/.clipper-tls-issue.lock"
if ! flock -n 9; then
  log "another issuance is running"
  exit "${{EX_TEMPFAIL}}"
fi

# A crash while the placeholder was parked: put it back before anything else.
if [[ ! -e ${{LIVE_DIR}} && -d ${{PARKED}} && ! -e ${{RENEWAL_CONF}} ]]; then
  mv "${{PARKED}}" "${{LIVE_DIR}}"
  log "restored the parked placeholder"
fi

if [[ -e ${{RENEWAL_CONF}} ]]; then
  log "the certificate for ${{DOMAIN}} exists; {RENEW_UNIT}.timer renews it"
  rm -rf "${{PARKED}}"
  exit 0
fi

# Does http://NAME/ reach this nginx? The same path Let's Encrypt will fetch, with a token only
# this run knows. A failed probe costs nothing; a failed validation counts against the limits.
install -d -m 0755 "${{CHALLENGE_DIR}}"
token=clipper-probe-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')
printf '%s' "${{token}}" >"${{CHALLENGE_DIR}}/${{token}}"
chmod 0644 "${{CHALLENGE_DIR}}/${{token}}"
reaches_here() {{
  local answer
  answer=$(curl --silent --max-time 10 --max-redirs 0 \\
    "http://$1{port}/.well-known/acme-challenge/${{token}}" || true)
  [[ ${{answer}} == "${{token}}" ]]
}}
names=()
if reaches_here "${{DOMAIN}}"; then
  names+=(--domain "${{DOMAIN}}")
  # www is in the certificate when its DNS points here too (nginx redirects it to the apex).
  if reaches_here "www.${{DOMAIN}}"; then
    names+=(--domain "www.${{DOMAIN}}")
  else
    log "www.${{DOMAIN}} does not reach this host; the certificate covers ${{DOMAIN}} only"
  fi
fi
rm -f "${{CHALLENGE_DIR}}/${{token}}"
if [[ ${{#names[@]}} -eq 0 ]]; then
  log "http://${{DOMAIN}}/ does not reach this host yet (DNS or firewall); retrying later"
  exit "${{EX_TEMPFAIL}}"
fi

# certbot will not create a lineage over a live dir it did not make: park the placeholder.
# nginx keeps serving the placeholder it has loaded; the deploy hook reloads it on success.
if [[ -e ${{LIVE_DIR}} ]]; then
  if [[ ! -e ${{LIVE_DIR}}/{PLACEHOLDER_MARKER} ]]; then
    log "${{LIVE_DIR}} is neither certbot's nor the placeholder; not touching it"
    exit 1
  fi
  rm -rf "${{PARKED}}"
  mv "${{LIVE_DIR}}" "${{PARKED}}"
fi

status=0
certbot certonly --non-interactive --agree-tos --no-eff-email --email "${{EMAIL}}" \\
  --webroot --webroot-path "${{WEBROOT}}" "${{names[@]}}" --cert-name "${{DOMAIN}}" \\
  --key-type ecdsa --deploy-hook "${{HOOK}}" \\
  --config-dir "${{LE_DIR}}" --work-dir {under_root(LETSENCRYPT_WORK_DIR, root)} \\
  --logs-dir {under_root(LETSENCRYPT_LOGS_DIR, root)} || status=$?

if [[ ${{status}} -ne 0 || ! -s ${{LIVE_DIR}}/fullchain.pem ]]; then
  if [[ ! -e ${{LIVE_DIR}} && -d ${{PARKED}} ]]; then
    mv "${{PARKED}}" "${{LIVE_DIR}}"
  fi
  log "certbot failed (exit ${{status}}); the placeholder stays; see {LETSENCRYPT_LOGS_DIR}"
  exit 1
fi
rm -rf "${{PARKED}}"
log "issued the certificate for ${{DOMAIN}}"
"""


def render_reload_hook() -> str:
    """`clipper-tls-reload-nginx`: certbot's deploy hook; reloads nginx only if its config
    (with the new certificate) passes `nginx -t`, so a bad file never takes the site down."""
    return f"""\
#!/bin/bash
{_HEADER}
# certbot deploy hook: a certificate changed (RENEWED_LINEAGE); load it into nginx.
set -euo pipefail

if ! nginx -t -q; then
  printf 'clipper-tls-reload-nginx: nginx -t failed; nginx keeps the old certificate\\n' >&2
  exit 1
fi
systemctl reload nginx.service
printf 'clipper-tls-reload-nginx: reloaded nginx for %s\\n' "${{RENEWED_LINEAGE:-a renewal}}"
"""


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
        HostFile(PLACEHOLDER_SCRIPT, render_placeholder_script(settings, root), "0755"),
        HostFile(ISSUE_SCRIPT, render_issue_script(settings, root, http_port), "0755"),
        HostFile(RELOAD_HOOK, render_reload_hook(), "0755"),
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
