"""Composition: settings in, the stack's components out. No resource is declared before the
settings are valid, and nothing here branches on the stack's name."""

from __future__ import annotations

import pulumi

from components.network import DigitalOceanProject, Network, NetworkArgs, ProjectArgs
from components.settings import Secrets, Settings, SettingsError, load_settings


def build_stack(settings: Settings, secrets: Secrets) -> dict[str, pulumi.Input[object]]:
    """Declare every component of the stack; return the stack outputs."""
    env = settings.environment
    network = Network(
        f"{env}-network",
        NetworkArgs(environment=env, region=settings.region, ip_range=settings.vpc_ip_range),
    )
    project_urns: list[pulumi.Input[str]] = []
    if project_urns:
        DigitalOceanProject(
            f"{env}-project", ProjectArgs(environment=env, resource_urns=project_urns)
        )
    return {"vpcId": network.vpc_id, "siteUrl": settings.site_url}


def main() -> None:
    """The program: load and validate settings (stopping with a clear error), build, export."""
    try:
        settings, secrets = load_settings()
    except SettingsError as err:
        raise pulumi.RunError(str(err)) from err
    for name, value in build_stack(settings, secrets).items():
        pulumi.export(name, value)
