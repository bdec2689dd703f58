"""`kes serve` over TLS with uvicorn's options, in its own process: the same API over https,
and nothing over plain http."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kes import KafkaConfig
from tests.serve_support import APPEND, TOKENS, serve_process

pytestmark = pytest.mark.kafka


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_serves_appends_over_https_only(kafka_config: KafkaConfig, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    args = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--tokens", str(tokens))
    with serve_process(kafka_config, *args) as (url, _):
        https = url.replace("http://", "https://")
        body = {"expectedVersion": 0, "events": [{"eventType": "Opened", "payload": {}}]}
        r = httpx.post(
            f"{https}/streams/Vault/v-1",
            json=body,
            headers={"Authorization": f"Bearer {APPEND}"},
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=30,
        )
        assert r.status_code == 201, r.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/healthz", timeout=5)  # plain http to a TLS port
