"""The stack's private network and who may reach its hosts' SSH from outside."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from components.provider import rules as provider_rules
from components.settings.concern import Concern


def _vpc_range(value: str) -> str:
    problem = provider_rules.vpc_range_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _admin_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"not a CIDR network such as 203.0.113.0/24 ({err})") from None
    if network.prefixlen == 0:
        raise ValueError("opens SSH to the whole internet; allowed: a specific admin network")
    return value


AdminCidr = Annotated[str, AfterValidator(_admin_cidr)]


class NetworkSettings(Concern):
    """The VPC's range and the admin networks (the firewalls' sources)."""

    vpc_ip_range: Annotated[str, AfterValidator(_vpc_range)] = Field(
        description="Private range of the stack's VPC; must not overlap another stack's."
    )
    admin_cidrs: list[AdminCidr] = Field(
        min_length=1, description="Networks allowed to reach SSH (port 22)."
    )
