"""Stable previews: every input is declared in the form the provider reads back.

The normalisations relied on, each with its source, are `NORMALISATIONS` in
components/provider/normalisations.py; this test prints them and checks both stacks.
"""

from __future__ import annotations

import pytest

from components.offline.runner import run_program
from components.provider.normalisations import NORMALISATIONS, read_back_problems
from tests.support.program import plain, stack_run

STACKS = ["staging", "production"]


def test_the_normalisations_relied_on_are_listed_with_their_source() -> None:
    listed = {(n.inputs, n.source) for n in NORMALISATIONS}
    assert len(listed) == len(NORMALISATIONS) >= 5
    for n in NORMALISATIONS:
        print(f"{', '.join(t.split(':')[-1] for t in n.types)} {n.inputs}: {n.read_back}"
              f" [{n.source}]")  # fmt: skip
        assert n.types and n.read_back and "terraform-provider-digitalocean" in n.source


@pytest.mark.parametrize("stack", STACKS)
def test_every_input_reads_back_as_declared(stack: str) -> None:
    run = stack_run(stack)
    problems = [
        f"{r.name}: {p}"
        for r in run.registrations
        for p in read_back_problems(r.type, plain(r.inputs))
    ]
    assert problems == []
    covered = {t for n in NORMALISATIONS for t in n.types}
    assert covered & {r.type for r in run.registrations}


def test_the_checks_catch_what_the_provider_would_change() -> None:
    record = "digitalocean:index/dnsRecord:DnsRecord"
    assert read_back_problems(record, {"type": "CAA", "tag": "issuewild", "value": ";"})
    assert read_back_problems(record, {"type": "CNAME", "value": "x.example.com", "name": "www"})
    assert read_back_problems(record, {"type": "A", "value": "1.2.3.4", "name": "a.example.com",
                                       "domain": "example.com"})  # fmt: skip
    firewall = "digitalocean:index/firewall:Firewall"
    all_ports = {"protocol": "tcp", "portRange": "1-65535"}
    assert read_back_problems(firewall, {"outboundRules": [all_ports]})
    assert read_back_problems("digitalocean:index/droplet:Droplet", {"region": "NYC3"})
    cluster = "digitalocean:index/databaseCluster:DatabaseCluster"
    assert read_back_problems(cluster, {"maintenanceWindows": [{"day": "Sunday", "hour": "04:00"}]})


@pytest.mark.parametrize("stack", STACKS)
def test_two_runs_declare_identical_inputs_so_sets_keep_their_order(stack: str) -> None:
    # A set (firewall rules, tags, SSH keys, domains) declared in a varying order would diff.
    first = {r.urn: plain(r.inputs) for r in stack_run(stack).registrations}
    again = {r.urn: plain(r.inputs) for r in run_program(stack).registrations}
    assert first == again
