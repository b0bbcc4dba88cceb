"""A throw-away certificate authority and a TLS server certificate for the demo's broker.

Production brokers get their certificates as docs/mosquitto/README.md says (openssl, a CA kept
offline); the demo makes the same shape of files with `cryptography` so it needs no tool.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServerCerts:
    ca: Path
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key, kept in memory to issue certificates with."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    days: int

    @classmethod
    def create(cls, cn: str = "yizhan demo CA", *, days: int = 30) -> Authority:
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key, days)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, cn: str, folder: Path, stem: str, *, hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A certificate for `cn` (a server's when `hosts` are given: those names and 127.0.0.1;
        a client's otherwise), written as `<stem>.crt` and `<stem>.key` under `folder`."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=self.days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if hosts:
            names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
            names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert_path = folder / f"{stem}.crt"
        cert_path.write_bytes(
            builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        return cert_path, _write_key(key, folder / f"{stem}.key")


def server_certs(folder: Path, *, hosts: tuple[str, ...] = ("localhost",), days: int = 30) -> ServerCerts:
    """A CA and a certificate for `hosts` (and 127.0.0.1), signed by it, written under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = Authority.create(days=days)
    cert, key = authority.issue(hosts[0], folder, "broker", hosts=hosts)
    return ServerCerts(authority.write(folder / "ca.crt"), cert, key)
