"""nginx's check and reload: deploy.json's argv lists, verbatim (the host's nginx, or a test
nginx with its own prefix)."""

from __future__ import annotations

from collections.abc import Sequence


def config_test(test_command: Sequence[str]) -> list[str]:
    return list(test_command)


def reload(reload_command: Sequence[str]) -> list[str]:
    return list(reload_command)
