"""rclone calls on the bucket. The remote (`spaces:`) and its key exist only in rclone's
environment (RCLONE_CONFIG_SPACES_*), never in a config file or on a command line."""

from __future__ import annotations

REMOTE = "spaces"
_BASE = ["rclone", "--retries", "3", "--low-level-retries", "5"]


def remote_path(bucket: str, key: str) -> str:
    return f"{REMOTE}:{bucket}/{key}"


def copy_to(source: str, target: str) -> list[str]:
    return [*_BASE, "copyto", source, target]


def stat(path: str) -> list[str]:
    return [*_BASE, "lsjson", "--stat", path]


def list_files(path: str) -> list[str]:
    return [*_BASE, "lsjson", "-R", "--files-only", path]


def delete(path: str) -> list[str]:
    return [*_BASE, "deletefile", path]
