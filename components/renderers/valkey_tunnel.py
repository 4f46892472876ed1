"""The Valkey TLS tunnel on each app host: stunnel in client mode, supervised by systemd.

Why a tunnel: the app's Redis client has no TLS option and DigitalOcean's managed Valkey accepts
TLS only. The backend talks plain Redis to `127.0.0.1:<cache_tunnel_port>`; stunnel carries it
over TLS to the cluster's private host and verifies the cluster's certificate against
DigitalOcean's CA for that cluster (chain and host name). The password never touches the tunnel:
the Redis AUTH goes through it end to end.

Why stunnel (Ubuntu package `stunnel4`) rather than HAProxy: it does exactly this one job, its
client mode has chain and host-name verification built in (`verifyChain`, `checkHost`), its
config is a dozen lines, and it is small enough to run under systemd's sandboxing with a dynamic
user. HAProxy would add a second proxy with its own health-check and logging model for no gain.

The config lives under /etc/clipper (not /etc/stunnel), so the package's own `stunnel4` init
script, which starts every /etc/stunnel/*.conf, never starts a second copy on the same port.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.host.files import HostFile
from components.host.layout import VALKEY_CA_FILE

TUNNEL_CONFIG_FILE = "/etc/clipper/valkey-tunnel.conf"
TUNNEL_SERVICE = "clipper-valkey-tunnel.service"
TUNNEL_UNIT_FILE = f"/etc/systemd/system/{TUNNEL_SERVICE}"
STUNNEL_BINARY = "/usr/bin/stunnel4"
TUNNEL_PACKAGES: tuple[str, ...] = ("stunnel4",)


@dataclass(frozen=True)
class TunnelEndpoints:
    """Where the tunnel listens and where it connects; none of it is secret."""

    listen_port: int  # on 127.0.0.1
    valkey_host: str  # the cluster's private host name (also the name checked in its cert)
    valkey_port: int
    ca_file: str = VALKEY_CA_FILE
    listen_host: str = "127.0.0.1"


_CONFIG = """\
; Valkey TLS tunnel, rendered by the Clipper platform (components/renderers/valkey_tunnel.py).
; The app speaks plain Redis to {listen_host}:{listen_port}; stunnel speaks TLS to Valkey.
foreground = yes
syslog = no
debug = notice
pid =

[valkey]
client = yes
accept = {listen_host}:{listen_port}
connect = {valkey_host}:{valkey_port}
; Resolve the cluster's name at each connection: a failover may move it.
delay = yes
sni = {valkey_host}
; Trust only DigitalOcean's CA for this cluster, and only a certificate for this host name.
CAfile = {ca_file}
verifyChain = yes
checkHost = {valkey_host}
sslVersionMin = TLSv1.2
; Redis connections are long-lived and mostly idle; keep them open for a day.
TIMEOUTidle = 86400
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
socket = r:SO_KEEPALIVE=1
"""

_UNIT = """\
[Unit]
Description=Clipper: TLS tunnel from {listen_host}:{listen_port} to the managed Valkey cluster
Documentation=man:stunnel4(8)
After=network-online.target
Wants=network-online.target
# Never stop retrying: the backend cannot start without its cache.
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart={binary} {config}
Restart=always
RestartSec=2
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
CapabilityBoundingSet=
LockPersonality=yes
MemoryDenyWriteExecute=yes

[Install]
WantedBy=multi-user.target
"""


def render_valkey_tunnel_config(endpoints: TunnelEndpoints) -> str:
    """The stunnel client configuration for one tunnel (stunnel's INI-like format)."""
    if not 1 <= endpoints.listen_port <= 65535 or not 1 <= endpoints.valkey_port <= 65535:
        raise ValueError(f"ports out of range: {endpoints}")
    for value in (endpoints.valkey_host, endpoints.ca_file, endpoints.listen_host):
        if not value or any(c in value for c in " \n;=[]"):
            raise ValueError(f"not a plain host name or path: {value!r}")
    return _CONFIG.format(
        listen_host=endpoints.listen_host,
        listen_port=endpoints.listen_port,
        valkey_host=endpoints.valkey_host,
        valkey_port=endpoints.valkey_port,
        ca_file=endpoints.ca_file,
    )


def render_valkey_tunnel_unit(endpoints: TunnelEndpoints) -> str:
    """The systemd unit that runs and supervises the tunnel (restart always, sandboxed)."""
    return _UNIT.format(
        listen_host=endpoints.listen_host,
        listen_port=endpoints.listen_port,
        binary=STUNNEL_BINARY,
        config=TUNNEL_CONFIG_FILE,
    )


def valkey_tunnel_host_files(endpoints: TunnelEndpoints, ca_certificate: str) -> list[HostFile]:
    """Every file of the tunnel for an app host: the cluster CA, the config and the unit."""
    if "BEGIN CERTIFICATE" not in ca_certificate:
        raise ValueError("the Valkey CA must be a PEM certificate")
    return [
        HostFile(endpoints.ca_file, ca_certificate.strip() + "\n", "0644"),
        HostFile(TUNNEL_CONFIG_FILE, render_valkey_tunnel_config(endpoints), "0644"),
        HostFile(TUNNEL_UNIT_FILE, render_valkey_tunnel_unit(endpoints), "0644"),
    ]
