"""Shared test infrastructure: real services on loopback for host tests.

Import from here (``from tests.support import PostgresServer``) or use the pytest fixtures
defined in ``tests/conftest.py``. The Debian
packages these helpers run are installed by ``scripts/install-test-deps.sh``.
"""

from .docker import BASE_IMAGE, BASE_PACKAGES, DockerEngine, build_base_image, cache_dir, file_lock
from .procs import ServiceError, free_port, log_tail, wait_for_port, wait_until
from .services import (
    NginxFactory,
    NginxServer,
    PostgresServer,
    RedisServer,
    SshHost,
    nginx_main_conf,
)
from .tls import TlsFiles, make_tls_files

__all__ = [
    "BASE_IMAGE",
    "BASE_PACKAGES",
    "DockerEngine",
    "NginxFactory",
    "NginxServer",
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "SshHost",
    "TlsFiles",
    "build_base_image",
    "cache_dir",
    "file_lock",
    "free_port",
    "log_tail",
    "make_tls_files",
    "nginx_main_conf",
    "wait_for_port",
    "wait_until",
]
