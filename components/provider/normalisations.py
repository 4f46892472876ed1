"""What the DigitalOcean provider changes when it reads a resource back, and the form to declare.

After `pulumi up`, the next preview diffs the program's inputs against what the provider read
back from the API. An input the provider normalises (a dot appended, a default filled in, a
value case-folded) shows as a change on every preview unless the program declares the
normalised form. Each entry of `NORMALISATIONS` names the inputs, what the provider does, its
source in terraform-provider-digitalocean (which pulumi-digitalocean bridges), and a pure check
over one declared resource's inputs (camelCase, as the engine records them) that returns the
inputs that would not read back as declared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

TF = "terraform-provider-digitalocean"
DO = "digitalocean:index/"

# Record types whose value the provider reads back with a trailing dot (unless "@" or iodef).
DOTTED_RECORD_TYPES = frozenset({"CNAME", "MX", "NS", "SRV", "CAA"})


def dns_value_read_back(record: Mapping[str, Any]) -> str:
    """The value a DNS record reads back as: the API keeps it without a trailing dot and the
    provider's Read appends one to CNAME/MX/NS/SRV/CAA data other than "@" and CAA iodef."""
    value = str(record["value"])
    if record.get("type") in DOTTED_RECORD_TYPES and value != "@" and record.get("tag") != "iodef":
        return value if value.endswith(".") else value + "."
    return value


Check = Callable[[Mapping[str, Any]], list[str]]


def _dns_value(inputs: Mapping[str, Any]) -> list[str]:
    read = dns_value_read_back(inputs)
    return [] if read == inputs["value"] else [f"value {inputs['value']!r} reads back {read!r}"]


def _dns_relative_name(inputs: Mapping[str, Any]) -> list[str]:
    name, domain = str(inputs.get("name", "")), str(inputs.get("domain", ""))
    if name.endswith("."):
        return [f"name {name!r} is absolute; the API returns names relative to the zone"]
    if domain and name.endswith(domain):
        return [f"name {name!r} repeats the zone; declare it relative ('@' for the apex)"]
    return []


def _lower_case(*keys: str) -> Check:
    def check(inputs: Mapping[str, Any]) -> list[str]:
        return [
            f"{k} {inputs[k]!r} reads back lower-case"
            for k in keys
            if isinstance(inputs.get(k), str) and inputs[k] != inputs[k].lower()
        ]

    return check


def _firewall_ports(inputs: Mapping[str, Any]) -> list[str]:
    found = []
    for direction in ("inboundRules", "outboundRules"):
        for rule in inputs.get(direction) or []:
            port, protocol = rule.get("portRange"), rule.get("protocol")
            if protocol == "icmp" and port is not None:
                found.append(f"{direction}: icmp with portRange {port!r} reads back without one")
            elif protocol != "icmp" and port in ("0", "1-65535"):
                found.append(f"{direction}: {protocol} portRange {port!r} reads back 'all'")
    return found


def _maintenance_window(inputs: Mapping[str, Any]) -> list[str]:
    found = []
    for window in inputs.get("maintenanceWindows") or []:
        day, hour = str(window.get("day", "")), str(window.get("hour", ""))
        if day != day.lower():
            found.append(f"maintenance day {day!r} reads back lower-case")
        if len(hour.split(":")) != 2:
            found.append(f"maintenance hour {hour!r}: declare HH:MM (read back HH:MM:SS)")
    return found


@dataclass(frozen=True)
class Normalisation:
    """One read-back rule: which resources and inputs, what the provider does, where it is."""

    types: tuple[str, ...]
    inputs: str
    read_back: str
    source: str
    check: Check


NORMALISATIONS: tuple[Normalisation, ...] = (
    Normalisation(
        (f"{DO}dnsRecord:DnsRecord",), "value",
        "CNAME/MX/NS/SRV/CAA data gets a trailing dot (not '@', not CAA iodef); so CAA"
        " issuewild ';' would read back ';.' (dropped: RFC 8659, issue governs wildcards)",
        f"{TF} digitalocean/domain/resource_record.go, resourceDigitalOceanRecordRead",
        _dns_value,
    ),
    Normalisation(
        (f"{DO}dnsRecord:DnsRecord",), "name",
        "names come back relative to the zone ('@' for the apex)",
        f"{TF} digitalocean/domain/resource_record.go, name DiffSuppressFunc and Read",
        _dns_relative_name,
    ),
    Normalisation(
        (f"{DO}droplet:Droplet", f"{DO}volume:Volume", f"{DO}loadBalancer:LoadBalancer",
         f"{DO}databaseCluster:DatabaseCluster", f"{DO}spacesBucket:SpacesBucket"),
        "region, size",
        "region and size slugs are stored lower-case (StateFunc strings.ToLower)",
        f"{TF} digitalocean/droplet/resource_droplet.go, volume/resource_volume.go,"
        " loadbalancer/resource_loadbalancer.go, database/resource_database_cluster.go,"
        " spaces/resource_spaces_bucket.go (region StateFunc)",
        _lower_case("region", "size"),
    ),
    Normalisation(
        (f"{DO}firewall:Firewall",), "inboundRules/outboundRules portRange",
        "the API returns '0' for all ports, which the provider reads back as 'all' (so '0' or"
        " '1-65535' would diff; 'all' round-trips); icmp rules read back with no port range",
        f"{TF} digitalocean/firewall/firewalls.go (flatten rules), resource_firewall_test.go"
        " (fullPortRange and icmp configs: empty plan after apply)",
        _firewall_ports,
    ),
    Normalisation(
        (f"{DO}databaseCluster:DatabaseCluster",), "maintenanceWindows",
        "the hour reads back as HH:MM:SS (suppressed against HH:MM); days are lower-case",
        f"{TF} digitalocean/database/resource_database_cluster.go, maintenance_window.hour",
        _maintenance_window,
    ),
)  # fmt: skip


def read_back_problems(typ: str, inputs: Mapping[str, Any]) -> list[str]:
    """Every declared input of one resource that would not read back as declared."""
    return [p for n in NORMALISATIONS if typ in n.types for p in n.check(inputs)]
