"""Every ``KES_*`` variable ``KafkaConfig.from_env`` reads is documented where users look:
its docstring and docs/operations.md; and each one takes effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from kes.errors import InvalidInputError
from kes.kafka import config as config_module
from kes.kafka.config import KafkaConfig

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = [name for name, _, _ in config_module._ENV]


def test_every_variable_read_is_documented() -> None:
    doc = KafkaConfig.from_env.__doc__ or ""
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert {"KES_NAMESPACE", "KES_TOPIC_PREFIX"} <= set(VARIABLES)
    for name in [*VARIABLES, "KES_CLIENT_PROPERTIES"]:
        assert name in doc, f"{name} is missing from KafkaConfig.from_env's docstring"
        assert name in operations, f"{name} is missing from docs/operations.md"
    assert "KES_KAFKA_<SETTING>" in doc and "KES_KAFKA_<SETTING>" in operations


def test_each_variable_takes_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "KES_BOOTSTRAP_SERVERS": "kafka:9093",
        "KES_NAMESPACE": "shop",
        "KES_TOPIC_PREFIX": "shop.ev.",
        "KES_PARTITIONS": "6",
        "KES_REPLICATION_FACTOR": "3",
        "KES_ROLE": "client",
        "KES_INSTANCE_ID": "w-1",
        "KES_INDEX_DIR": "/tmp/index",
        "KES_SESSION_TIMEOUT_MS": "7000",
        "KES_TRANSACTION_TIMEOUT_MS": "9000",
        "KES_REQUEST_TIMEOUT_S": "2.5",
        "KES_PRINCIPAL": "User:shop-writer",
        "KES_MAX_EVENT_TIME_AHEAD_S": "600",
        "KES_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    }
    assert set(values) - {"KES_KAFKA_SECURITY_PROTOCOL"} == set(VARIABLES)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    config = KafkaConfig.from_env()
    assert (config.bootstrap_servers, config.ns, config.topic("Order")) == (
        "kafka:9093",
        "shop",
        "shop.ev.Order",
    )
    assert (config.partitions, config.replication_factor, config.role) == (6, 3, "client")
    assert (config.instance_id, config.index_dir) == ("w-1", "/tmp/index")
    assert (config.session_timeout_ms, config.transaction_timeout_ms) == (7000, 9000)
    assert config.request_timeout_s == 2.5
    assert config.max_event_time_ahead_s == 600
    assert config.principal_name == "shop-writer"
    assert config.reply_topic().startswith("shop.replies.shop-writer.")
    assert config.client == {"security.protocol": "SASL_SSL"}
    monkeypatch.setenv("KES_PARTITIONS", "six")
    with pytest.raises(InvalidInputError, match="KES_PARTITIONS='six'"):
        KafkaConfig.from_env()


def test_client_properties_file_is_read_and_kes_kafka_settings_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        "# a comment\nbootstrap.servers=kafka:9094\nsecurity.protocol=SASL_SSL\n"
        "sasl.username=alice\nsasl.password=s3cret\n"
    )
    monkeypatch.setenv("KES_CLIENT_PROPERTIES", str(path))
    monkeypatch.setenv("KES_KAFKA_SASL_USERNAME", "bob")
    monkeypatch.delenv("KES_BOOTSTRAP_SERVERS", raising=False)  # it would win over the file
    config = KafkaConfig.from_env()
    assert config.bootstrap_servers == "kafka:9094"
    assert config.client == {
        "security.protocol": "SASL_SSL",
        "sasl.username": "bob",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(config)
    monkeypatch.setenv("KES_CLIENT_PROPERTIES", str(tmp_path / "missing"))
    with pytest.raises(InvalidInputError, match="KES_CLIENT_PROPERTIES"):
        KafkaConfig.from_env()
