"""The operators' SSH keys: on the deploy user of every host, and on the droplets' accounts."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from components.settings.concern import Concern

_FINGERPRINT_RE = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
_PUBLIC_KEY_RE = re.compile(
    r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}( \S.*)?$"
)


def _fingerprint(value: str) -> str:
    if not _FINGERPRINT_RE.match(value):
        raise ValueError("allowed: an MD5 key fingerprint as shown by DigitalOcean (aa:bb:...:ff)")
    return value


def _public_key(value: str) -> str:
    if not _PUBLIC_KEY_RE.match(value.strip()):
        raise ValueError("allowed: an OpenSSH public key line (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)")
    return value.strip()


class AccessSettings(Concern):
    """Which operator keys reach the hosts."""

    ssh_admin_public_keys: list[Annotated[str, AfterValidator(_public_key)]] = Field(
        min_length=1, description="OpenSSH public keys of the operators, for the deploy user."
    )
    ssh_key_fingerprints: list[Annotated[str, AfterValidator(_fingerprint)]] = Field(
        description="DigitalOcean account SSH keys attached when a droplet is created."
    )
