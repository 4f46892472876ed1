"""Type tokens that changed: a component's type is `clipper:<module>:<Class>`, named after the
module (or package) under components/ that defines it. Components declared under an older
token carry it as a Pulumi alias, so the engine moves their state to the new URN (and their
children's with them) instead of creating them anew and deleting the old ones."""

from __future__ import annotations

import pulumi


def formerly(old_type: str, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """`opts`, plus an alias naming the type this component had before."""
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=old_type)])
    )
