"""The errors every host command reports: a message that says which step failed and why (never
a secret), and the exit code the CLI returns for it."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again when the other run is done


class HostError(Exception):
    """A step failed; the message says which and why. What serves keeps serving."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(HostError):
    """A config file, state file or env file is missing or malformed, or bad usage."""

    exit_code = EXIT_USAGE


class LockHeldError(HostError):
    """Another deploy, rollback, backup, restore or drill holds this host's lock."""

    exit_code = EXIT_LOCKED
