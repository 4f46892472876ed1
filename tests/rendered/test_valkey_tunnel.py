"""The Valkey tunnel's rendered files, checked by the real tools: the exact config each stack ships
is accepted by stunnel (started with only the CA path and listening port moved into a temp dir),
and the unit by systemd-analyze."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from components.host.layout import VALKEY_CA_FILE
from components.renderers.valkey_tunnel import (
    TUNNEL_CONFIG_FILE,
    TUNNEL_UNIT_FILE,
    TunnelEndpoints,
    render_valkey_tunnel_config,
    valkey_tunnel_host_files,
)
from tests.support.procs import ServiceError, free_port
from tests.support.program import of_role, plain, stack_run
from tests.support.stunnel import StunnelProcess
from tests.support.tls import make_tls_files

STACKS = ["staging", "production"]
CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"


def _shipped(stack: str) -> dict[str, str]:
    droplet = of_role(stack_run(stack), "digitalocean:index/droplet:Droplet")[0]
    files = yaml.safe_load(plain(droplet.inputs["userData"]))["write_files"]
    return {f["path"]: f["content"] for f in files}


def _local_copy(config: str, ca: Path, port: int) -> str:
    """The shipped config with only host-specific paths moved: the CA file and the listen port."""
    assert f"CAfile = {VALKEY_CA_FILE}\n" in config and "accept = 127.0.0.1:6380\n" in config
    return config.replace(f"CAfile = {VALKEY_CA_FILE}", f"CAfile = {ca}").replace(
        "accept = 127.0.0.1:6380", f"accept = 127.0.0.1:{port}"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_config_is_what_the_renderer_makes_for_the_cache(stack: str) -> None:
    run = stack_run(stack)
    (cache,) = [c for c in run.of_type(CLUSTER) if c.inputs["engine"] == "valkey"]
    expected = render_valkey_tunnel_config(
        TunnelEndpoints(
            listen_port=6380,
            valkey_host=cache.outputs["privateHost"],
            valkey_port=int(cache.outputs["port"]),
        )
    )
    # So the live tests of the renderer (tests/host) test what each host runs.
    assert _shipped(stack)[TUNNEL_CONFIG_FILE] == expected


@pytest.mark.parametrize("stack", STACKS)
def test_stunnel_accepts_the_shipped_config(stack: str, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    port = free_port()
    config = tmp_path / "valkey-tunnel.conf"
    config.write_text(_local_copy(_shipped(stack)[TUNNEL_CONFIG_FILE], tls.ca_cert, port))
    # The cluster's name does not resolve here: `delay = yes` resolves it per connection, so a
    # host whose DNS is not ready yet still starts its tunnel.
    with StunnelProcess(config, port) as tunnel:
        assert "Configuration successful" in tunnel.log


def test_stunnel_refuses_to_start_without_the_ca(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "valkey-tunnel.conf"
    config.write_text(
        _local_copy(_shipped("staging")[TUNNEL_CONFIG_FILE], tmp_path / "missing.crt", port)
    )
    with pytest.raises(ServiceError, match="No trusted certificates found"):
        StunnelProcess(config, port).start()


def test_stunnel_refuses_an_unknown_option(tmp_path: Path) -> None:
    # The acceptance above means something only if stunnel rejects what it does not know.
    tls = make_tls_files(tmp_path / "tls")
    port = free_port()
    config = tmp_path / "valkey-tunnel.conf"
    text = _local_copy(_shipped("staging")[TUNNEL_CONFIG_FILE], tls.ca_cert, port)
    config.write_text(text.replace("verifyChain = yes", "verifyChian = yes"))
    with pytest.raises(ServiceError, match="Specified option name is not valid"):
        StunnelProcess(config, port).start()


@pytest.mark.parametrize("stack", STACKS)
def test_the_tunnel_verifies_the_chain_and_host_name_with_tls_1_2_or_later(stack: str) -> None:
    config = _shipped(stack)[TUNNEL_CONFIG_FILE]
    for line in ("client = yes", "verifyChain = yes", "sslVersionMin = TLSv1.2"):
        assert f"\n{line}\n" in config
    connect_host = config.split("\nconnect = ", 1)[1].split(":", 1)[0]
    assert f"\ncheckHost = {connect_host}\n" in config
    assert f"\nsni = {connect_host}\n" in config
    assert "verifyPeer" not in config  # pinning one leaf would break on certificate rotation


def test_the_unit_runs_the_shipped_config_unprivileged_and_always_restarts(tmp_path: Path) -> None:
    unit = _shipped("production")[TUNNEL_UNIT_FILE]
    assert f"ExecStart=/usr/bin/stunnel4 {TUNNEL_CONFIG_FILE}\n" in unit
    for line in ("Restart=always", "DynamicUser=yes", "StartLimitIntervalSec=0"):
        assert f"\n{line}\n" in unit
    path = tmp_path / "clipper-valkey-tunnel.service"
    path.write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("host", ["evil.example.com\nverifyChain = no", "a b", "host;x", "", "x=y"])
def test_the_renderer_refuses_a_host_that_would_inject_options(host: str) -> None:
    with pytest.raises(ValueError):
        render_valkey_tunnel_config(TunnelEndpoints(6380, host, 25061))


def test_the_ca_must_be_a_pem_certificate() -> None:
    with pytest.raises(ValueError, match="PEM"):
        valkey_tunnel_host_files(TunnelEndpoints(6380, "h.example.com", 25061), "not a cert")
