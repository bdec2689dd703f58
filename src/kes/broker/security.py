"""The secrets of a secured local cluster (``kes broker start --secure``): a private CA,
one certificate per node, the admin principal, and users with a SCRAM password and a
client certificate each.

Everything lives in ``<data_dir>/secure/``; private keys and passwords are written to
files readable by their owner only (0600) and are never printed or logged: commands
print the paths of the settings files, not their contents.

Principals: ``User:<name>`` for SASL/SCRAM user ``<name>`` and for a client certificate
whose subject is ``CN=<name>`` (``ssl.principal.mapping.rules`` on the brokers). The
nodes are ``User:kes-broker`` (their certificates, on the mTLS and controller
listeners) and the administrator is ``User:admin``; both are super users.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kes.broker.errors import BrokerError
from kes.kafka.config import read_properties

BROKER_PRINCIPAL = "kes-broker"
ADMIN = "admin"
MECHANISM = "SCRAM-SHA-512"
MAPPING_RULES = "RULE:^CN=([^,]+)$/$1/,DEFAULT"
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VALID_DAYS = 825


def _crypto() -> Any:
    try:
        import cryptography  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the installation
        raise BrokerError(
            "`kes broker start --secure` makes its certificates with the `cryptography` "
            "package, which is not installed: pip install 'kes[secure]'."
        ) from None
    from cryptography import x509

    return x509


def _write_secret(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` readable by its owner only, atomically."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    tmp.replace(path)


@dataclass(frozen=True)
class UserFiles:
    """Where a user's client settings are: nothing secret is held in this object."""

    name: str
    properties: Path  # librdkafka properties: SASL_SSL with SCRAM-SHA-512
    env: Path  # the same as KES_* variables (source it)
    tls_env: Path  # KES_* variables for the mTLS listener (client certificate)
    certificate: Path
    key: Path

    @property
    def principal(self) -> str:
        return f"User:{self.name}"


class Secrets:
    """The CA, node certificates and user files of one secured local cluster."""

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir) / "secure"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def _ca_key(self) -> Path:
        return self.dir / "ca.key"

    def node_keystore(self, node_id: int) -> Path:
        """The node's private key and certificate chain, one PEM file (Kafka's PEM store)."""
        return self.dir / f"node-{node_id}.pem"

    def user(self, name: str) -> UserFiles:
        base = self.dir / "users"
        return UserFiles(
            name,
            base / f"{name}.properties",
            base / f"{name}.env",
            base / f"{name}-tls.env",
            base / f"{name}.crt",
            base / f"{name}.key",
        )

    # ---- certificates ------------------------------------------------------------------

    def ensure_ca(self) -> None:
        if self.ca.exists() and self._ca_key.exists():
            return
        x509 = _crypto()
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"kes local CA {secrets.token_hex(4)}")]
        )
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
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
            .sign(key, hashes.SHA256())
        )
        _write_secret(
            self._ca_key,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        self.ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _issue(self, common_name: str, server: bool) -> tuple[bytes, bytes]:
        """(private key as unencrypted PKCS#8 PEM, certificate PEM) signed by the CA."""
        x509 = _crypto()
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self.ensure_ca()
        ca_key = serialization.load_pem_private_key(self._ca_key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem, cert.public_bytes(serialization.Encoding.PEM)

    def ensure_node(self, node_id: int) -> Path:
        """The node's keystore (``CN=kes-broker``, valid for 127.0.0.1 and localhost)."""
        path = self.node_keystore(node_id)
        if not path.exists():
            key, cert = self._issue(BROKER_PRINCIPAL, server=True)
            _write_secret(path, key + cert + self.ca.read_bytes())
        return path

    # ---- users -------------------------------------------------------------------------

    def ensure_user_files(
        self, name: str, sasl_servers: str, tls_servers: str
    ) -> tuple[UserFiles, str]:
        """The user's certificate and settings files, made when missing: (files, password).

        The password is returned so that the caller can register it with Kafka; it is
        also in the 0600 settings files, and nowhere else.
        """
        if not _USER.match(name):
            raise BrokerError(
                f"user name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting "
                "with a letter or digit (it becomes the principal User:<name>)."
            )
        files = self.user(name)
        files.properties.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(files.properties.parent, 0o700)
        password = _read_password(files.properties) or secrets.token_urlsafe(24)
        if not files.certificate.exists() or not files.key.exists():
            key, cert = self._issue(name, server=False)
            _write_secret(files.key, key)
            files.certificate.write_bytes(cert)
        sasl = {
            "bootstrap.servers": sasl_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": name,
            "sasl.password": password,
            "ssl.ca.location": str(self.ca),
        }
        _write_secret(files.properties, "".join(f"{k}={v}\n" for k, v in sasl.items()))
        _write_secret(files.env, _env_lines(sasl, name))
        tls = {
            "bootstrap.servers": tls_servers,
            "security.protocol": "SSL",
            "ssl.ca.location": str(self.ca),
            "ssl.certificate.location": str(files.certificate),
            "ssl.key.location": str(files.key),
        }
        _write_secret(files.tls_env, _env_lines(tls, name))
        return files, password

    def sasl_conf(self, name: str) -> dict[str, str]:
        """librdkafka settings for user ``name`` over SASL_SSL (from its properties file)."""
        path = self.user(name).properties
        if not path.exists():
            raise BrokerError(
                f"no user {name!r} in {self.dir}; add it with `kes broker user add {name}`."
            )
        return read_properties(str(path))

    def tls_conf(self, name: str) -> dict[str, str]:
        """librdkafka settings (no servers) for user ``name``'s client certificate."""
        files = self.user(name)
        return {
            "security.protocol": "SSL",
            "ssl.ca.location": str(self.ca),
            "ssl.certificate.location": str(files.certificate),
            "ssl.key.location": str(files.key),
        }

    def secret_values(self) -> list[str]:
        """Every password and private key body kept here (for tests that look for leaks)."""
        found = []
        for path in self.dir.rglob("*"):
            if path.suffix == ".properties":
                password = _read_password(path)
                if password:
                    found.append(password)
            elif path.suffix in (".key", ".pem") and path.name != "ca.pem":
                text = path.read_text()
                for block in re.findall(r"-----BEGIN PRIVATE KEY-----(.+?)-----END", text, re.S):
                    found.extend(line for line in block.split() if len(line) >= 40)
        return found


def _env_lines(conf: dict[str, str], name: str) -> str:
    lines = [f"export KES_BOOTSTRAP_SERVERS={conf['bootstrap.servers']}"]
    lines += [
        f"export KES_KAFKA_{k.upper().replace('.', '_')}={v}"
        for k, v in conf.items()
        if k != "bootstrap.servers"
    ]
    lines.append(f"export KES_PRINCIPAL=User:{name}")
    return "\n".join(lines) + "\n"


def _read_password(path: Path) -> str | None:
    if not path.exists():
        return None
    return read_properties(str(path)).get("sasl.password")


def listener_properties(secrets_: Secrets, node_id: int) -> dict[str, Any]:
    """The security settings of a secured node (listeners are set by the caller)."""
    jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "MTLS",
        "sasl.enabled.mechanisms": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(secrets_.node_keystore(node_id)),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(secrets_.ca),
        "ssl.principal.mapping.rules": MAPPING_RULES,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{BROKER_PRINCIPAL};User:{ADMIN}",
    }
