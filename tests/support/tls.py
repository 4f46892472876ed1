"""Throw-away TLS material for tests: a private CA plus server and client certificates.

Generated with the ``openssl`` CLI (no Python crypto dependency) with P-256 keys, which are fast
to make and accepted by Redis, nginx, stunnel, OpenSSH-free TLS clients and Python's ``ssl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .procs import require_binary, run_step

__all__ = ["TlsFiles", "make_tls_files"]

_DAYS = "30"


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a generated CA and the certificates it signed (PEM files)."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def _new_key_args(key: Path) -> list[str]:
    return [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
    ]


def _sign(
    openssl: str,
    directory: Path,
    name: str,
    *,
    subject: str,
    extensions: str,
    ca: tuple[Path, Path],
) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    run_step(
        "tls",
        f"{name} key and CSR",
        [openssl, "req", "-new", *_new_key_args(key), "-out", str(csr), "-subj", subject],
    )
    run_step(
        "tls",
        f"sign {name} certificate",
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca[0]),
            "-CAkey",
            str(ca[1]),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            _DAYS,
            "-sha256",
            "-extfile",
            str(ext),
        ],
    )
    csr.unlink()
    ext.unlink()
    key.chmod(0o600)
    return cert, key


def make_tls_files(
    directory: Path,
    *,
    common_name: str = "localhost",
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
) -> TlsFiles:
    """Create ``ca``, ``server`` and ``client`` ``.crt``/``.key`` files in ``directory``.

    The server certificate carries the given DNS names and IPs as subjectAltName, so clients can
    verify ``127.0.0.1`` or ``localhost`` against ``ca.crt`` exactly as they would verify a real
    host against its CA.
    """
    openssl = require_binary("tls", "openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
    run_step(
        "tls",
        "create CA",
        [
            openssl,
            "req",
            "-x509",
            *_new_key_args(ca_key),
            "-out",
            str(ca_cert),
            "-days",
            _DAYS,
            "-subj",
            "/CN=clipper-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )
    ca_key.chmod(0o600)
    common = (
        "basicConstraints=critical,CA:FALSE\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    alt = ",".join([*(f"DNS:{n}" for n in dns_names), *(f"IP:{ip}" for ip in ip_addresses)])
    server_ext = (
        common + "extendedKeyUsage=serverAuth\n" + (f"subjectAltName={alt}\n" if alt else "")
    )
    ca = (ca_cert, ca_key)
    cert, key = _sign(
        openssl, directory, "server", subject=f"/CN={common_name}", extensions=server_ext, ca=ca
    )
    client_ext = common + "extendedKeyUsage=clientAuth\n"
    client_cert, client_key = _sign(
        openssl,
        directory,
        "client",
        subject="/CN=clipper-test-client",
        extensions=client_ext,
        ca=ca,
    )
    return TlsFiles(ca_cert, ca_key, cert, key, client_cert, client_key)
