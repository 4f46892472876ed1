"""The site's domain in DigitalOcean DNS: apex A (and AAAA), www, and CAA for Let's Encrypt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.settings import DnsSettings, EdgeSettings, IdentitySettings

# Only Let's Encrypt may issue for the domain (certbot on a host, or the load balancer's managed
# certificate). No `issuewild` record: its usual value ";" reads back from the provider as ";."
# (provider_normalisations), a change on every preview; without it, `issue` governs wildcard
# names too (RFC 8659, section 4.3), so only Let's Encrypt may issue those as well.
CAA_ISSUER = "letsencrypt.org."


@dataclass(frozen=True)
class SiteDnsArgs:
    """The stack's domain, the records' settings, and where the apex points."""

    identity: IdentitySettings
    dns: DnsSettings
    edge: EdgeSettings  # the ACME account's email is the CAA contact (iodef)
    ipv4: pulumi.Input[str]
    ipv6: pulumi.Input[str] | None
    # What must finish before the A/AAAA records may point at a new address (with a reserved
    # IP: the droplet's deploy, for its IPv6). An ordering only.
    address_after: Sequence[pulumi.Input[pulumi.Resource]] = ()


class SiteDns(pulumi.ComponentResource):
    """The zone and its records: `@` A/AAAA to the entry point, `www` CNAME to the apex, CAA
    `issue letsencrypt.org.` and `iodef mailto:`; every value in the form the provider reads back.

    Attributes: `domain_urn` (for the project), `fqdn`.
    """

    domain_urn: pulumi.Output[str]
    fqdn: pulumi.Output[str]

    def __init__(self, name: str, args: SiteDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("clipper:dns:SiteDns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        domain = args.identity.domain
        zone = do.Domain(f"{name}-domain", name=domain, opts=child)

        def record(
            role: str,
            typ: str,
            value: pulumi.Input[str],
            *,
            host: str = "@",
            tag: str | None = None,
            after: Sequence[pulumi.Input[pulumi.Resource]] = (),
        ) -> do.DnsRecord:
            return do.DnsRecord(
                f"{name}-{role}",
                domain=zone.id,
                name=host,
                type=typ,
                value=value,
                ttl=args.dns.dns_ttl,
                flags=0 if typ == "CAA" else None,
                tag=tag,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
            )

        apex = record("apex-a", "A", args.ipv4, after=args.address_after)
        if args.ipv6 is not None:
            record("apex-aaaa", "AAAA", args.ipv6, after=args.address_after)
        record("www", "CNAME", f"{domain}.", host="www")
        record("caa-issue", "CAA", CAA_ISSUER, tag="issue")
        record("caa-iodef", "CAA", f"mailto:{args.edge.acme_email}", tag="iodef")

        self.domain_urn = zone.domain_urn
        self.fqdn = apex.fqdn
        self.register_outputs({"fqdn": self.fqdn})
