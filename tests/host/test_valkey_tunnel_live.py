"""Real Redis-protocol traffic through the rendered Valkey tunnel, under the real stunnel, to a
TLS-only Valkey 8 on loopback (as DigitalOcean's managed Valkey): the app's plain client works
through it, and the tunnel refuses a server whose certificate the cluster CA did not sign or
that is not the host it expects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from components.renderers.valkey_tunnel import TunnelEndpoints, render_valkey_tunnel_config
from tests.support import ValkeyServer
from tests.support.procs import free_port
from tests.support.stunnel import StunnelProcess
from tests.support.tls import make_tls_files


def _tunnel(tmp_path: Path, *, host: str, port: int, ca_file: Path) -> StunnelProcess:
    listen = free_port()
    config = tmp_path / f"tunnel-{listen}.conf"
    config.write_text(
        render_valkey_tunnel_config(
            TunnelEndpoints(listen_port=listen, valkey_host=host, valkey_port=port,
                            ca_file=str(ca_file))
        )
    )  # fmt: skip
    return StunnelProcess(config, listen)


def _client(tunnel: StunnelProcess, password: str) -> redis.Redis:
    # What the app does: plain Redis to 127.0.0.1:<tunnel port>, with the cluster's password.
    return redis.Redis(
        host="127.0.0.1", port=tunnel.listen_port, password=password, socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip


@pytest.fixture
def tunnel(tmp_path: Path, tls_valkey_server: ValkeyServer) -> Iterator[StunnelProcess]:
    assert tls_valkey_server.ca_cert is not None
    # The server certificate names localhost; the tunnel connects to and checks that name.
    with _tunnel(
        tmp_path, host="localhost", port=tls_valkey_server.port, ca_file=tls_valkey_server.ca_cert
    ) as running:
        yield running


def test_redis_commands_pass_through_the_tunnel(
    tunnel: StunnelProcess, tls_valkey_server: ValkeyServer
) -> None:
    client = _client(tunnel, tls_valkey_server.password)
    assert client.ping() is True
    assert client.set("clipper:tunnel", "through-tls") is True
    assert client.get("clipper:tunnel") == b"through-tls"
    big = b"x" * (1024 * 1024)
    client.set("clipper:big", big)
    assert client.get("clipper:big") == big
    assert client.incrby("clipper:counter", 5) == 5
    assert "Certificate accepted" in tunnel.log


def test_the_password_is_still_checked_by_the_server_through_the_tunnel(
    tunnel: StunnelProcess,
) -> None:
    with pytest.raises(redis.AuthenticationError):
        _client(tunnel, "wrong-password").ping()


def test_the_tunnel_carries_concurrent_clients(
    tunnel: StunnelProcess, tls_valkey_server: ValkeyServer
) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            client = _client(tunnel, tls_valkey_server.password)
            for i in range(50):
                client.set(f"clipper:c{n}:{i}", i)
                assert client.get(f"clipper:c{n}:{i}") == str(i).encode()
        except BaseException as err:  # collected and re-raised in the test thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert tunnel.log.count("Service [valkey] accepted connection") >= 8


def test_without_the_tunnel_the_plain_client_cannot_talk_to_the_tls_only_server(
    tls_valkey_server: ValkeyServer,
) -> None:
    # Why the tunnel exists: the app's client speaks plain Redis, the cluster only TLS.
    direct = redis.Redis(
        host="127.0.0.1", port=tls_valkey_server.port, password=tls_valkey_server.password,
        socket_timeout=3, retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    with pytest.raises(redis.ConnectionError):
        direct.ping()


def test_a_server_whose_certificate_another_ca_signed_is_refused(
    tmp_path: Path, tls_valkey_server: ValkeyServer
) -> None:
    # The tunnel trusts a different CA than the one that signed the server's certificate.
    other = make_tls_files(tmp_path / "other-ca")
    with (
        _tunnel(
            tmp_path, host="localhost", port=tls_valkey_server.port, ca_file=other.ca_cert
        ) as tunnel,
        pytest.raises(redis.ConnectionError),
    ):
        _client(tunnel, tls_valkey_server.password).ping()
    assert "Certificate accepted" not in tunnel.log
    assert "certificate verify failed" in tunnel.log.lower() or "rejected" in tunnel.log.lower()


def test_a_server_with_a_valid_certificate_for_another_host_is_refused(
    tmp_path: Path, tls_valkey_server: ValkeyServer
) -> None:
    assert tls_valkey_server.ca_cert is not None
    # Connect by IP to the right server, but expect another cluster's name: checkHost refuses.
    config_host = "other-cluster.db.ondigitalocean.com"
    listen = free_port()
    config = tmp_path / "mismatch.conf"
    text = render_valkey_tunnel_config(
        TunnelEndpoints(listen_port=listen, valkey_host=config_host,
                        valkey_port=tls_valkey_server.port, ca_file=str(tls_valkey_server.ca_cert))
    )  # fmt: skip
    # Reach the loopback server while still checking the expected cluster name.
    config.write_text(text.replace(f"connect = {config_host}:", "connect = 127.0.0.1:"))
    with StunnelProcess(config, listen) as tunnel, pytest.raises(redis.ConnectionError):
        _client(tunnel, tls_valkey_server.password).ping()
    assert "Certificate accepted" not in tunnel.log
    assert "CERT: Subject checks failed" in tunnel.log  # the host name, not the chain
