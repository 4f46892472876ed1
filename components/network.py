"""The stack's private network: a VPC, and the DigitalOcean project that groups its resources."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.settings import IdentitySettings, NetworkSettings


@dataclass(frozen=True)
class NetworkArgs:
    """Which stack's network (its name and region) and the VPC's range."""

    identity: IdentitySettings
    network: NetworkSettings


class Network(pulumi.ComponentResource):
    """A VPC for one stack, in its region."""

    vpc_id: pulumi.Output[str]
    vpc_urn: pulumi.Output[str]
    ip_range: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("clipper:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env = args.identity.environment
        vpc = do.Vpc(
            f"{name}-vpc",
            name=f"clipper-{env}",
            region=args.identity.region,
            ip_range=args.network.vpc_ip_range,
            description=f"Clipper {env}: app droplets, databases and cache",
            opts=child,
        )
        self.vpc_id = vpc.id
        # DigitalOcean's URN (do:vpc:...), not Pulumi's `vpc.urn`.
        self.vpc_urn = vpc.vpc_urn
        self.ip_range = vpc.ip_range
        self.register_outputs({"vpc_id": self.vpc_id, "ip_range": self.ip_range})


@dataclass(frozen=True)
class ProjectArgs:
    """Whose project (the stack's) and the URNs of the resources it holds."""

    identity: IdentitySettings
    resource_urns: list[pulumi.Input[str]]


class DigitalOceanProject(pulumi.ComponentResource):
    """A DigitalOcean project holding every resource of the stack, so the console groups them."""

    project_id: pulumi.Output[str]

    def __init__(self, name: str, args: ProjectArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("clipper:network:DigitalOceanProject", name, None, opts)
        env = args.identity.environment
        project = do.Project(
            f"{name}-project",
            name=f"clipper-{env}",
            description=f"Clipper {env}",
            purpose="Web Application",
            environment=env.capitalize(),
            resources=args.resource_urns,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.project_id = project.id
        self.register_outputs({"project_id": self.project_id})
