"""A throwaway certificate authority for TLS tests: a CA, a broker certificate and a client
certificate, written as PEM files, plus the Mosquitto listener lines that use them.

    pki = make_test_pki(tmp_path)
    with EphemeralMosquitto(pki.mosquitto_config(require_certificate=True)) as broker:
        MqttClient(MqttConfig(..., tls=True, ca_file=pki.ca_file, cert_file=pki.client_cert_file,
                              key_file=pki.client_key_file), ...)

Never for production: the keys are unencrypted and the certificates live a day.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "TestPki", "make_test_pki"]

DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _subject_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


class CertificateAuthority:
    """A self-signed CA that issues leaf certificates into a folder."""

    def __init__(self, folder: Path, common_name: str = "rsu-test-ca") -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.certificate_file = folder / f"{common_name}.pem"
        self.certificate_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        server_names: tuple[str, ...] = (),
        client: bool = False,
        expired: bool = False,
    ) -> tuple[Path, Path]:
        """A leaf certificate and its key (stem.pem, stem.key); server_names go into the subject
        alternative names (what a TLS client checks the host against); expired: it ended yesterday."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            not_before, not_after = now - datetime.timedelta(days=3), now - datetime.timedelta(days=1)
        else:
            not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if server_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(_subject_names(server_names)), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        certificate_path, key_path = self.folder / f"{stem}.pem", self.folder / f"{stem}.key"
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return certificate_path, key_path


@dataclass(frozen=True)
class TestPki:
    """The files of one test CA: its certificate, a broker certificate and a client certificate."""

    __test__ = False  # not a pytest test class, despite the name

    ca: CertificateAuthority
    server_cert_file: Path
    server_key_file: Path
    client_cert_file: Path
    client_key_file: Path

    @property
    def ca_file(self) -> Path:
        return self.ca.certificate_file

    def mosquitto_config(self, *, require_certificate: bool = False) -> str:
        """Lines for the listener EphemeralMosquitto opens (its extra_config): TLS with the broker
        certificate; require_certificate: clients must present a certificate signed by this CA."""
        lines = [f"certfile {self.server_cert_file}", f"keyfile {self.server_key_file}"]
        if require_certificate:
            lines += [f"cafile {self.ca_file}", "require_certificate true"]
        return "\n".join(lines) + "\n"


def make_test_pki(
    folder: Path,
    *,
    server_names: tuple[str, ...] = DEFAULT_SERVER_NAMES,
    server_expired: bool = False,
    ca_name: str = "rsu-test-ca",
) -> TestPki:
    """A fresh CA in folder with a broker certificate for server_names and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(folder, ca_name)
    server_cert, server_key = ca.issue("broker", "rsu-test-broker", server_names=server_names, expired=server_expired)
    client_cert, client_key = ca.issue("client", "rsu-test-client", client=True)
    return TestPki(ca, server_cert, server_key, client_cert, client_key)
