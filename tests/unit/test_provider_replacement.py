"""Replacing staging's only droplet: the reserved IP moves only once the new droplet serves.

Pulumi replaces create-before-delete unless a resource says otherwise, runs a step only after
everything it depends on, and deletes the replaced resources at the end. So the order of a
droplet replacement follows from the dependency graph recorded under mocks: new droplet, its
ready/scripts/env/deploy commands, then the reserved-IP assignment and the AAAA record, then
the old droplet is deleted.
"""

from __future__ import annotations

import graphlib

from components.offline.mocks import Registration
from components.offline.runner import ProgramRun
from tests.support.program import of_role, plain, stack_run

DROPLET = "digitalocean:index/droplet:Droplet"
ASSIGNMENT = "digitalocean:index/reservedIpAssignment:ReservedIpAssignment"
RECORD = "digitalocean:index/dnsRecord:DnsRecord"
COMMAND = "command:remote:Command"


def _dependents(run: ProgramRun, root: str) -> set[str]:
    """URNs that depend on `root`, directly or through others: what its replacement re-runs."""
    found: set[str] = set()
    frontier = {root}
    while frontier:
        frontier = {
            r.urn for r in run.registrations if set(r.depends_on) & frontier and r.urn not in found
        }
        found |= frontier
    return found


def _up_order(run: ProgramRun, urns: set[str]) -> list[str]:
    """One order in which the engine may run the steps for `urns` (dependencies first)."""
    graph = {r.urn: set(r.depends_on) & urns for r in run.registrations if r.urn in urns}
    return list(graphlib.TopologicalSorter(graph).static_order())


def _deploy(run: ProgramRun) -> Registration:
    (deploy,) = [r for r in run.of_type(COMMAND) if r.name.endswith("-app-1-deploy")]
    return deploy


def test_the_droplet_is_replaced_create_before_delete() -> None:
    run = stack_run("staging")
    (droplet,) = of_role(run, DROPLET)
    assert not droplet.delete_before_replace
    (assignment,) = run.of_type(ASSIGNMENT)
    assert not assignment.delete_before_replace


def test_the_reserved_ip_moves_only_after_the_new_droplets_deploy() -> None:
    run = stack_run("staging")
    (droplet,) = of_role(run, DROPLET)
    (assignment,) = run.of_type(ASSIGNMENT)
    deploy = _deploy(run)
    assert _deploy(run).urn in assignment.depends_on
    replaced = _dependents(run, droplet.urn) | {droplet.urn}
    assert {deploy.urn, assignment.urn} <= replaced
    order = _up_order(run, replaced)
    assert order.index(droplet.urn) < order.index(deploy.urn) < order.index(assignment.urn)


def test_a_release_preview_shows_the_assignment_unchanged() -> None:
    # The deploy is replaced on every release; its outputs are unknown at preview. The
    # assignment waits for it by dependency only: its inputs never come from the deploy, so a
    # preview of a new image shows no change to the address.
    run = stack_run("staging")
    (assignment,) = run.of_type(ASSIGNMENT)
    (droplet,) = of_role(run, DROPLET)
    commands = {r.urn for r in run.of_type(COMMAND)}
    for name, urns in assignment.property_dependencies.items():
        assert not set(urns) & commands, (name, urns)
    assert droplet.urn in assignment.property_dependencies["dropletId"]
    (aaaa,) = [r for r in run.of_type(RECORD) if r.inputs["type"] == "AAAA"]
    assert not set(aaaa.property_dependencies["value"]) & commands


def test_the_aaaa_record_follows_the_new_droplet_only_after_its_deploy() -> None:
    run = stack_run("staging")
    (aaaa,) = [r for r in run.of_type(RECORD) if r.inputs["type"] == "AAAA"]
    (droplet,) = of_role(run, DROPLET)
    assert _deploy(run).urn in aaaa.depends_on
    assert aaaa.inputs["value"] == droplet.outputs["ipv6Address"]


def test_the_assignment_names_the_droplet_the_release_deployed_to() -> None:
    run = stack_run("staging")
    (assignment,) = run.of_type(ASSIGNMENT)
    # The deploy's first trigger is its droplet's id (components/release.py).
    assert int(assignment.inputs["dropletId"]) == int(plain(_deploy(run).inputs["triggers"])[0])
