"""The deploy SSH key pair: how Pulumi itself reaches the app hosts.

The public half goes into the `deploy` user's authorized_keys through cloud-init (a public key is
not a secret); the private half stays a Pulumi secret in state and is used only by the release
component's pulumi-command SSH connections.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.renames import formerly


@dataclass(frozen=True)
class DeployKeyArgs:
    """Nothing to choose: ED25519 is short, fast and supported by every current OpenSSH."""

    algorithm: str = "ED25519"


class DeployKey(pulumi.ComponentResource):
    """An SSH key pair for the `deploy` user (host_layout.DEPLOY_USER).

    Attributes for other components:
    - `public_key_openssh`: one `ssh-ed25519 ...` line, plain; goes into user-data.
    - `private_key_openssh`: the OpenSSH private key, a Pulumi secret; for pulumi-command
      `remote.ConnectionArgs(user="deploy", private_key=...)`.

    Rotating it (`pulumi up --replace <urn of the PrivateKey>`) changes the user-data, so new
    droplets get the new key; existing ones keep the old one unless rolled (README).
    """

    public_key_openssh: pulumi.Output[str]
    private_key_openssh: pulumi.Output[str]

    def __init__(
        self, name: str, args: DeployKeyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:deploy_key:DeployKey", name, None, formerly("clipper:access:DeployKey", opts)
        )
        key = tls.PrivateKey(
            f"{name}-key", algorithm=args.algorithm, opts=pulumi.ResourceOptions(parent=self)
        )
        # The provider ends the line with a newline; authorized_keys wants one key per line.
        self.public_key_openssh = key.public_key_openssh.apply(lambda k: k.strip())
        self.private_key_openssh = pulumi.Output.secret(key.private_key_openssh)
        self.register_outputs({"public_key_openssh": self.public_key_openssh})
