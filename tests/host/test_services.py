"""The shared service helpers really start working services (and fail loudly when they cannot).

Each test drives a real daemon through a real client and asserts something that would break if
the helper were wrong: credentials enforced, TLS verified against the generated CA, nginx
reloads taking effect, containers reachable on published loopback ports, ssh exit codes.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import (
    DockerEngine,
    NginxFactory,
    PostgresServer,
    ServiceError,
    SshHost,
    ValkeyServer,
    free_port,
    make_tls_files,
    wait_for_port,
    wait_until,
)
from tests.support.data_stores import SERVICE_LABEL

pytestmark = pytest.mark.host


def _http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - checked above
        return int(resp.status), bytes(resp.read())


def test_free_port_gives_distinct_bindable_ports() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    for port in ports[:3]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


# -- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_round_trip_as_database_owner(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("selftest_app", owner="selftest_owner", password="it's-secret")
    conn = psycopg2.connect(postgres_server.dsn("selftest_app", "selftest_owner", "it's-secret"))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
            cur.execute("INSERT INTO items (name) VALUES (%s), (%s)", ("a", "b"))
            cur.execute(
                "SELECT current_user, current_database(), array_agg(name ORDER BY id) FROM items"
            )
            assert cur.fetchone() == ("selftest_owner", "selftest_app", ["a", "b"])
            cur.execute("SHOW server_version")
            row = cur.fetchone()
            assert row is not None and str(row[0]).startswith("17.")
    finally:
        conn.close()
    # The role owns the database it was given, and only that one.
    owner = postgres_server.psql(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'selftest_app';"
    )
    assert owner.strip() == "selftest_owner"


def test_postgres_has_the_real_pgvector(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("selftest_vector")
    out = postgres_server.psql(
        "CREATE EXTENSION vector; SELECT extversion FROM pg_extension WHERE extname = 'vector';"
        "SELECT '[1,2]'::vector <-> '[1,4]'::vector;",
        "selftest_vector",
    )
    version, distance = out.split()
    assert version.startswith("0.8") and distance == "2"


def test_postgres_tcp_requires_the_password(postgres_server: PostgresServer) -> None:
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(postgres_server.dsn(user=postgres_server.admin_user, password="wrong"))
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(
            f"host={postgres_server.host} port={postgres_server.port} user=postgres dbname=postgres"
        )
    # The URL form works for the admin too.
    conn = psycopg2.connect(postgres_server.url())
    conn.close()


def test_postgres_create_role_updates_an_existing_role(postgres_server: PostgresServer) -> None:
    postgres_server.create_role("selftest_rotating", "first")
    postgres_server.create_role("selftest_rotating", "second")
    conn = psycopg2.connect(postgres_server.dsn(user="selftest_rotating", password="second"))
    conn.close()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(postgres_server.dsn(user="selftest_rotating", password="first"))


# -- Valkey -----------------------------------------------------------------------------------


def test_valkey_set_get_with_password(valkey_server: ValkeyServer) -> None:
    assert valkey_server.version().startswith("8.")
    client = redis.Redis(
        host=valkey_server.host, port=valkey_server.port, password=valkey_server.password
    )
    assert client.set("selftest:key", "value") is True
    assert client.get("selftest:key") == b"value"
    assert redis.Redis.from_url(valkey_server.url()).get("selftest:key") == b"value"


def test_valkey_refuses_without_or_with_wrong_password(valkey_server: ValkeyServer) -> None:
    no_retry = Retry(NoBackoff(), 0)  # redis-py retries auth errors with backoff by default
    with pytest.raises(redis.exceptions.AuthenticationError, match=r"(?i)auth"):
        redis.Redis(host=valkey_server.host, port=valkey_server.port, retry=no_retry).get(
            "selftest:key"
        )
    with pytest.raises(redis.exceptions.AuthenticationError, match="invalid"):
        redis.Redis(
            host=valkey_server.host, port=valkey_server.port, password="wrong", retry=no_retry
        ).get("k")


def test_tls_valkey_verified_against_generated_ca(tls_valkey_server: ValkeyServer) -> None:
    assert tls_valkey_server.ca_cert is not None
    client = redis.Redis(
        host=tls_valkey_server.host,
        port=tls_valkey_server.port,
        password=tls_valkey_server.password,
        ssl=True,
        ssl_ca_certs=str(tls_valkey_server.ca_cert),
        ssl_cert_reqs="required",
    )
    assert client.set("selftest:tls", "yes") is True
    assert client.get("selftest:tls") == b"yes"


def test_tls_valkey_rejects_plaintext_and_foreign_ca(
    tls_valkey_server: ValkeyServer, tmp_path: Path
) -> None:
    plain = redis.Redis(
        host=tls_valkey_server.host,
        port=tls_valkey_server.port,
        password=tls_valkey_server.password,
        socket_timeout=3,
        retry=Retry(NoBackoff(), 0),
    )
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
    foreign = make_tls_files(tmp_path / "other-ca")
    ctx = ssl.create_default_context(cafile=str(foreign.ca_cert))
    address = (tls_valkey_server.host, tls_valkey_server.port)
    with (
        socket.create_connection(address, timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname=tls_valkey_server.host)


def test_tls_valkey_with_openssl_s_client(tls_valkey_server: ValkeyServer) -> None:
    proc = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{tls_valkey_server.host}:{tls_valkey_server.port}",
            "-CAfile",
            str(tls_valkey_server.ca_cert),
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-quiet",
        ],
        input=f"AUTH {tls_valkey_server.password}\r\nPING\r\nQUIT\r\n",
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert "+PONG" in proc.stdout, proc.stderr


def test_plain_client_through_stunnel_tunnel_to_tls_valkey(
    tls_valkey_server: ValkeyServer, tmp_path: Path
) -> None:
    local_port = free_port()
    conf = tmp_path / "stunnel.conf"
    conf.write_text(
        "foreground = yes\n"
        "pid =\n"
        f"output = {tmp_path / 'stunnel.log'}\n"
        "[redis]\n"
        "client = yes\n"
        f"accept = 127.0.0.1:{local_port}\n"
        f"connect = {tls_valkey_server.host}:{tls_valkey_server.port}\n"
        f"CAfile = {tls_valkey_server.ca_cert}\n"
        "verifyChain = yes\n"
        "checkIP = 127.0.0.1\n"
    )
    tunnel = subprocess.Popen(
        ["stunnel4", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        assert wait_for_port("127.0.0.1", local_port, timeout=10), (
            tmp_path / "stunnel.log"
        ).read_text()
        client = redis.Redis(host="127.0.0.1", port=local_port, password=tls_valkey_server.password)
        client.set("selftest:tunnel", "through")
        assert client.get("selftest:tunnel") == b"through"
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)


# -- nginx ------------------------------------------------------------------------------------


def test_nginx_serves_a_file_and_reload_takes_effect(nginx_factory: NginxFactory) -> None:
    server = nginx_factory()
    port = free_port()
    docroot = server.prefix / "html"
    docroot.mkdir()
    (docroot / "index.html").write_text("hello from nginx\n")
    (server.prefix / "site.conf").write_text(
        f"server {{ listen 127.0.0.1:{port}; root {docroot}; }}\n"
    )
    server.write_conf("", includes=["site.conf"])
    server.test()
    server.start(wait_ports=[port])
    assert _http_get(f"http://127.0.0.1:{port}/") == (200, b"hello from nginx\n")

    (server.prefix / "site.conf").write_text(
        f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 'second config'; }} }}\n"
    )
    server.reload()
    assert _http_get(f"http://127.0.0.1:{port}/") == (200, b"second config")
    server.stop()
    assert server.pid is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_nginx_broken_config_is_reported_and_old_one_keeps_serving(
    nginx_factory: NginxFactory,
) -> None:
    server = nginx_factory()
    port = free_port()
    server.write_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 'good'; }} }}")
    server.start(wait_ports=[port])
    server.write_conf(f"server {{ listen 127.0.0.1:{port}; no_such_directive on; }}")
    with pytest.raises(ServiceError, match="no_such_directive") as test_error:
        server.test()
    assert test_error.value.step == "nginx -t"
    with pytest.raises(ServiceError, match="unknown directive") as reload_error:
        server.reload()
    assert reload_error.value.step == "reload"
    assert _http_get(f"http://127.0.0.1:{port}/") == (200, b"good")


def test_nginx_stream_module_proxies_tcp(
    nginx_factory: NginxFactory, valkey_server: ValkeyServer
) -> None:
    server = nginx_factory()
    port = free_port()
    server.write_conf(
        "",
        stream_body=(
            f"server {{ listen 127.0.0.1:{port}; "
            f"proxy_pass {valkey_server.host}:{valkey_server.port}; }}"
        ),
    )
    server.start(wait_ports=[port])
    assert redis.Redis(host="127.0.0.1", port=port, password=valkey_server.password).ping() is True


# -- Docker -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_docker_engine_is_the_debian_daemon(docker_engine: DockerEngine) -> None:
    version = docker_engine.run(["version", "--format", "{{.Server.Version}}"]).stdout.strip()
    assert version.startswith("20.10"), version
    assert docker_engine.env["DOCKER_HOST"] == docker_engine.docker_host


@pytest.mark.slow
def test_base_image_container_answers_on_published_loopback_port(
    docker_engine: DockerEngine, base_image: str
) -> None:
    port = free_port()
    name = f"clipper-selftest-http-{os.getpid()}"
    docker_engine.run(
        [
            "run",
            "-d",
            "--rm",
            "--name",
            name,
            "-p",
            f"127.0.0.1:{port}:8000",
            base_image,
            "python3",
            "-m",
            "http.server",
            "8000",
            "--directory",
            "/etc",
        ]
    )
    try:
        expected = docker_engine.run(["exec", name, "cat", "/etc/debian_version"]).stdout.encode()

        def served() -> bool:
            try:
                return _http_get(f"http://127.0.0.1:{port}/debian_version", timeout=2) == (
                    200,
                    expected,
                )
            except OSError:
                return False

        assert wait_until(served, timeout=20), docker_engine.run(["logs", name], check=False).stderr
        assert expected.startswith(b"12.")
    finally:
        docker_engine.run(["rm", "-f", name], check=False)


@pytest.mark.slow
def test_host_network_container_queries_host_postgres(
    docker_engine: DockerEngine, base_image: str, postgres_server: PostgresServer
) -> None:
    script = (
        "import sys, psycopg2\n"
        "conn = psycopg2.connect(sys.argv[1])\n"
        "cur = conn.cursor()\n"
        "cur.execute('SELECT 40 + 2')\n"
        "print(cur.fetchone()[0])\n"
    )
    out = docker_engine.run(
        [
            "run",
            "--rm",
            "--network",
            "host",
            base_image,
            "python3",
            "-c",
            script,
            postgres_server.dsn(),
        ]
    ).stdout
    assert out.strip() == "42"


@pytest.mark.slow
def test_docker_build_from_base_image_works_offline(
    docker_engine: DockerEngine, base_image: str, tmp_path: Path
) -> None:
    tag = f"local/clipper-selftest-build:{os.getpid()}"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        'RUN echo "built $(busybox | head -1 | cut -d" " -f1)" > /built\n'
        'CMD ["cat", "/built"]\n'
    )
    docker_engine.run(["build", "-q", "-t", tag, str(tmp_path)])
    try:
        assert docker_engine.run(["run", "--rm", tag]).stdout.strip() == "built BusyBox"
    finally:
        docker_engine.run(["rmi", "-f", tag], check=False)


# -- SSH --------------------------------------------------------------------------------------


def test_ssh_runs_commands_with_stdin_and_exit_status(ssh_host: SshHost) -> None:
    result = ssh_host.ssh("echo hello; id -un")
    assert result.stdout.split() == ["hello", ssh_host.user]
    assert ssh_host.ssh("tr a-z A-Z", stdin="shout\n").stdout == "SHOUT\n"
    failed = ssh_host.ssh("exit 3", check=False)
    assert failed.returncode == 3
    with pytest.raises(ServiceError, match="exited 3"):
        ssh_host.ssh("exit 3")
    assert ssh_host.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_ssh_passes_accepted_environment(ssh_host: SshHost) -> None:
    out = ssh_host.ssh(
        'echo "$DOCKER_HOST|$NOT_ACCEPTED"',
        env={"DOCKER_HOST": "unix:///x.sock", "NOT_ACCEPTED": "1"},
    )
    assert out.stdout.strip() == "unix:///x.sock|"


def test_ssh_rejects_an_unknown_key(ssh_host: SshHost, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    args = ssh_host.client_args()
    args[args.index("-i") + 1] = str(other)
    proc = subprocess.run([*args, "true"], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 255
    assert "Permission denied" in proc.stderr


@pytest.mark.slow
def test_ssh_host_drives_the_docker_engine(ssh_host: SshHost, docker_engine: DockerEngine) -> None:
    out = ssh_host.ssh(
        "docker version --format '{{.Server.Version}}'",
        env={"DOCKER_HOST": docker_engine.docker_host},
    )
    assert out.stdout.strip().startswith("20.10")


# -- failure reporting ------------------------------------------------------------------------


def test_failed_start_names_the_step_quotes_the_log_and_cleans_up(
    docker_engine: DockerEngine,
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = int(blocker.getsockname()[1])
        server = ValkeyServer(docker_engine, port=taken)
        with pytest.raises(ServiceError) as error, server:
            pass
    assert error.value.step == "start"
    assert "Address already in use" in str(error.value)
    assert server.dir is None and server.container is None
    label = f"label={SERVICE_LABEL}=valkey:{taken}"
    assert not docker_engine.run(["ps", "-aq", "--filter", label]).stdout.split()


def test_a_server_that_cannot_start_quotes_its_output(
    docker_engine: DockerEngine, base_image: str
) -> None:
    # The bookworm base image has no PostgreSQL (not even its OS user): its error is quoted.
    server = PostgresServer(docker_engine, image=base_image)
    quoted = r"not ready on port \d+:\ninstall: invalid user .postgres."
    with pytest.raises(ServiceError, match=quoted) as error, server:
        pass
    assert error.value.step == "start"
    assert server.dir is None and server.container is None
