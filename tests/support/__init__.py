"""Shared test infrastructure: real services on loopback for host tests.

Import from here (``from tests.support import PostgresServer``) or use the pytest fixtures
defined in ``tests/conftest.py``. The Debian 12 packages these helpers run are installed by
``scripts/install-test-deps.sh``; PostgreSQL 17 and Valkey 8 come from the trixie services image.
"""

from .data_stores import PostgresClients, PostgresServer, ValkeyServer
from .docker import BASE_IMAGE, BASE_PACKAGES, DockerEngine, build_base_image, cache_dir, file_lock
from .procs import ServiceError, free_port, log_tail, wait_for_port, wait_until
from .services import (
    NginxFactory,
    NginxServer,
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
    "PostgresClients",
    "PostgresServer",
    "ServiceError",
    "SshHost",
    "TlsFiles",
    "ValkeyServer",
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
