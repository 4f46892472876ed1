"""The provider's own checks of single inputs, which the Pulumi SDK types do not carry.

pulumi-digitalocean's Python types say `str` or `int`; the bridged Terraform provider also runs
a `ValidateFunc` per input (an enum, a range) and `CustomizeDiff` rules (a CAA record needs
flags and a tag) at `pulumi preview`. The offline engine has no provider, so this table repeats
the ones for the inputs this program declares, each with its source file in
terraform-provider-digitalocean (`digitalocean/...`) or godo; tests check every declared
resource of both stacks against it (tests/unit/test_provider_inputs.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from components.provider.rules import LB_IDLE_TIMEOUT_SECONDS, UPTIME_ALERT_PERIODS
from components.settings import slugs

DO = "digitalocean:index/"
USER_DATA_MAX_BYTES = 64 * 1024


def _values(inputs: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) of every value at `path` ("a.b", "rules[].type"); absent ones skipped."""
    head, _, rest = path.partition(".")
    many = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(inputs, Mapping) or inputs.get(key) is None:
        return
    items = list(enumerate(inputs[key])) if many else [(None, inputs[key])]
    for index, value in items:
        where = f"{key}[{index}]" if index is not None else key
        if rest:
            yield from ((f"{where}.{p}", v) for p, v in _values(value, rest))
        else:
            yield where, value


def one_of(*allowed: str) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def between(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int | float) and low <= value <= high


def _ipv4(value: Any) -> bool:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class InputRule:
    """One provider check: resource type, input path, what is allowed, its source."""

    type: str
    path: str
    allowed: str
    ok: Callable[[Any], bool]
    source: str


def _rule(typ: str, path: str, allowed: str, ok: Callable[[Any], bool], source: str) -> InputRule:
    return InputRule(f"{DO}{typ}", path, allowed, ok, source)


UPTIME = "digitalocean/uptime/resource_uptime_alert.go"
LB = "digitalocean/loadbalancer/resource_loadbalancer.go"
RECORD = "digitalocean/domain/resource_record.go"
INPUT_RULES: tuple[InputRule, ...] = (
    _rule("uptimeAlert:UptimeAlert", "period", "2m..1h (required by the API)",
          one_of(*UPTIME_ALERT_PERIODS), UPTIME),
    _rule("uptimeAlert:UptimeAlert", "type", "latency, down, down_global, ssl_expiry",
          one_of("latency", "down", "down_global", "ssl_expiry"), UPTIME),
    _rule("uptimeAlert:UptimeAlert", "comparison", "greater_than, less_than",
          one_of("greater_than", "less_than"), UPTIME),
    _rule("uptimeCheck:UptimeCheck", "type", "ping, http, https",
          one_of("ping", "http", "https"), "digitalocean/uptime/resource_uptime_check.go"),
    _rule("uptimeCheck:UptimeCheck", "regions[]", "us_east, us_west, eu_west, se_asia",
          one_of("us_east", "us_west", "eu_west", "se_asia"),
          "godo uptime.go (UptimeCheck.Regions); DigitalOcean API uptime checks"),
    _rule("monitorAlert:MonitorAlert", "window", "5m, 10m, 30m, 1h",
          one_of("5m", "10m", "30m", "1h"), "digitalocean/monitoring/resource_monitor_alert.go"),
    _rule("monitorAlert:MonitorAlert", "compare", "GreaterThan, LessThan",
          one_of("GreaterThan", "LessThan"), "digitalocean/monitoring/resource_monitor_alert.go"),
    _rule("monitorAlert:MonitorAlert", "type", "a godo alert type (monitoring.go)",
          one_of("v1/insights/droplet/cpu", "v1/insights/droplet/memory_utilization_percent",
                 "v1/insights/droplet/disk_utilization_percent",
                 "v1/dbaas/alerts/cpu_alerts", "v1/dbaas/alerts/memory_utilization_alerts",
                 "v1/dbaas/alerts/disk_utilization_alerts", "v1/dbaas/alerts/load_15_alerts"),
          "digitalocean/monitoring/resource_monitor_alert.go; godo monitoring.go"),
    _rule("databaseConnectionPool:DatabaseConnectionPool", "mode",
          "session, transaction, statement", one_of("session", "transaction", "statement"),
          "digitalocean/database/resource_database_connection_pool.go"),
    _rule("databaseFirewall:DatabaseFirewall", "rules[].type", "ip_addr, droplet, k8s, tag, app",
          one_of("ip_addr", "droplet", "k8s", "tag", "app"),
          "digitalocean/database/resource_database_firewall.go"),
    _rule("databaseCluster:DatabaseCluster", "evictionPolicy", "godo's EvictionPolicy values",
          one_of(*slugs.VALKEY_EVICTION_POLICIES), "godo databases.go (EvictionPolicy*)"),
    _rule("databaseValkeyConfig:DatabaseValkeyConfig", "persistence", "off, rdb",
          one_of("off", "rdb"), "digitalocean/database/resource_database_valkey_config.go"),
    _rule("volume:Volume", "initialFilesystemType", "ext4, xfs", one_of("ext4", "xfs"),
          "digitalocean/volume/resource_volume.go"),
    _rule("certificate:Certificate", "type", "custom, lets_encrypt",
          one_of("custom", "lets_encrypt"), "digitalocean/certificate/resource_certificate.go"),
    _rule("dnsRecord:DnsRecord", "type", "A, AAAA, CAA, CNAME, MX, NS, TXT, SRV, SOA",
          one_of("A", "AAAA", "CAA", "CNAME", "MX", "NS", "TXT", "SRV", "SOA"), RECORD),
    _rule("dnsRecord:DnsRecord", "flags", "0..255", between(0, 255), RECORD),
    _rule("dnsRecord:DnsRecord", "tag", "issue, issuewild, iodef",
          one_of("issue", "issuewild", "iodef"), RECORD),
    _rule("dnsRecord:DnsRecord", "ttl", "at least 30 s (the API's minimum)", between(30, 2**31),
          f"{RECORD} (ttl >= 1); DigitalOcean API domain records: ttl minimum 30"),
    _rule("loadBalancer:LoadBalancer", "sizeUnit", "1..200", between(1, 200), LB),
    _rule("loadBalancer:LoadBalancer", "httpIdleTimeoutSeconds", "30..600",
          between(*LB_IDLE_TIMEOUT_SECONDS), "DigitalOcean load balancer API (idle timeout)"),
    _rule("loadBalancer:LoadBalancer", "healthcheck.checkIntervalSeconds", "3..300",
          between(3, 300), LB),
    _rule("loadBalancer:LoadBalancer", "healthcheck.responseTimeoutSeconds", "3..300",
          between(3, 300), LB),
    _rule("loadBalancer:LoadBalancer", "healthcheck.unhealthyThreshold", "2..10",
          between(2, 10), LB),
    _rule("loadBalancer:LoadBalancer", "healthcheck.healthyThreshold", "2..10",
          between(2, 10), LB),
    _rule("loadBalancer:LoadBalancer", "healthcheck.protocol", "http, https, tcp",
          one_of("http", "https", "tcp"), LB),
    _rule("loadBalancer:LoadBalancer", "forwardingRules[].entryProtocol",
          "http, https, http2, http3, tcp, udp",
          one_of("http", "https", "http2", "http3", "tcp", "udp"), LB),
    _rule("loadBalancer:LoadBalancer", "forwardingRules[].targetProtocol",
          "http, https, http2, tcp, udp", one_of("http", "https", "http2", "tcp", "udp"), LB),
    _rule("loadBalancer:LoadBalancer", "stickySessions.cookieName", "2..40 characters",
          lambda v: isinstance(v, str) and 2 <= len(v) <= 40, LB),
    _rule("loadBalancer:LoadBalancer", "stickySessions.cookieTtlSeconds", "at least 1",
          between(1, 2**31), LB),
    _rule("firewall:Firewall", "inboundRules[].protocol", "tcp, udp, icmp",
          one_of("tcp", "udp", "icmp"), "digitalocean/firewall/firewalls.go"),
    _rule("firewall:Firewall", "outboundRules[].protocol", "tcp, udp, icmp",
          one_of("tcp", "udp", "icmp"), "digitalocean/firewall/firewalls.go"),
    _rule("spacesBucket:SpacesBucket", "region", "a Spaces region",
          one_of(*slugs.SPACES_REGIONS), "digitalocean/spaces/resource_spaces_bucket.go"),
    _rule("project:Project", "environment", "Development, Staging, Production (any case)",
          lambda v: str(v).lower() in ("development", "staging", "production"),
          "digitalocean/project/resource_project.go"),
    _rule("droplet:Droplet", "userData", f"at most {USER_DATA_MAX_BYTES} bytes",
          lambda v: len(str(v).encode()) <= USER_DATA_MAX_BYTES,
          "DigitalOcean API reference, Droplets create: user_data limited to 64 KiB"
          " (not confirmed offline)"),
    _rule("reservedIpAssignment:ReservedIpAssignment", "ipAddress", "an IPv4 address", _ipv4,
          "digitalocean/reservedip/resource_reserved_ip_assignment.go"),
)  # fmt: skip


def _cross_input(typ: str, inputs: Mapping[str, Any]) -> list[str]:
    """The provider's CustomizeDiff rules that tie inputs of one resource together."""
    found = []
    if typ == f"{DO}uptimeAlert:UptimeAlert" and not inputs.get("period"):
        found.append(f'period is unset: the provider sends "" and the API refuses it ({UPTIME})')
    if typ == f"{DO}dnsRecord:DnsRecord" and inputs.get("type") == "CAA":
        found += [f"CAA needs {k} ({RECORD})" for k in ("flags", "tag") if inputs.get(k) is None]
    if typ == f"{DO}firewall:Firewall":
        for direction in ("inboundRules", "outboundRules"):
            for i, rule in enumerate(inputs.get(direction) or []):
                if rule.get("protocol") in ("tcp", "udp") and not rule.get("portRange"):
                    found.append(
                        f"{direction}[{i}]: tcp/udp needs portRange (resource_firewall.go)"
                    )
    return found


def input_problems(typ: str, inputs: Mapping[str, Any]) -> list[str]:
    """Every declared input of one resource the provider's own checks would refuse."""
    found = [
        f"{where} = {value!r}: allowed: {rule.allowed} [{rule.source}]"
        for rule in INPUT_RULES
        if rule.type == typ
        for where, value in _values(inputs, rule.path)
        if not rule.ok(value)
    ]
    return found + _cross_input(typ, inputs)
