"""Crypto-shredding on Kafka: after ``forget`` and compaction of the key topic, nothing on
any broker disk can give back the subject's personal data (``test_shredding.py`` has
the rules on the memory store)."""

from __future__ import annotations

import base64
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import NewTopic

from kes import (
    FORGOTTEN,
    Application,
    DataSubject,
    KafkaConfig,
    KafkaEventStore,
    KafkaKeyRing,
    KafkaSnapshotStore,
    LocalKeyEncryptionKey,
    SubjectForgottenError,
)
from kes.broker import LocalCluster
from kes.kafka.topics import KEYS, Topics
from kes.projections import ProjectionRunner, SqlProjection
from kes.shredding import KeyEncryptionKeyError
from tests.cli_support import kes
from tests.faults import read_topic
from tests.test_shredding import EMAIL, NAME, Member

pytestmark = pytest.mark.kafka

# A broker of its own, whose data directory this module searches; below Linux's ephemeral
# range, away from the session broker's ports.
SHRED_PORT = int(os.environ.get("KES_TEST_SHRED_BROKER_PORT", "19150"))
# Compaction within seconds: the cleaner looks every 250 ms (Kafka: 15 s) and deletes
# cleaned segment files at once (Kafka: after 60 s).
FAST_CLEANER = {"log.cleaner.backoff.ms": "250", "log.segment.delete.delay.ms": "0"}
# The key topic as kes makes it, with segments that roll and clean at once.
FAST_COMPACTION = {
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100",
    "min.compaction.lag.ms": "0",
    "file.delete.delay.ms": "0",
}


@pytest.fixture(scope="module")
def cleaning_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("shred-broker")
    cluster = LocalCluster.plan(data_dir, nodes=1, port=SHRED_PORT, properties=FAST_CLEANER)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    found.append(str(path.relative_to(root)))
            except OSError:
                continue  # deleted while we looked (a cleaned segment)
    return found


def topics_holding(bootstrap: str, needles: list[bytes]) -> dict[str, list[bytes]]:
    """Per topic (every one on the cluster but Kafka's own), the needles found in any
    record's key, value or headers, read by a plain consumer."""
    admin = Topics(KafkaConfig(bootstrap_servers=bootstrap)).admin
    found: dict[str, list[bytes]] = {}
    for topic in admin.list_topics(timeout=10).topics:
        if topic.startswith("__"):
            continue
        for r in read_topic(bootstrap, topic):
            blob = b"".join(
                [r.key or b"", r.value or b"", *(k.encode() + v for k, v in r.headers.items())]
            )
            hits = [n for n in needles if n in blob]
            if hits:
                found.setdefault(topic, []).extend(hits)
    return found


class Emails(SqlProjection):
    name = "shred-emails"
    aggregates = (Member, DataSubject)

    def setup(self, tx: Any) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS emails (id TEXT PRIMARY KEY, name TEXT, email TEXT)")

    def reset(self, tx: Any) -> None:
        tx.execute("DELETE FROM emails")

    def on_MemberJoined(self, event: Any, tx: Any) -> None:
        row = (event.aggregate_id, event.data.name, event.data.email)
        tx.execute("INSERT OR REPLACE INTO emails VALUES (?, ?, ?)", row)

    def on_EmailChanged(self, event: Any, tx: Any) -> None:
        tx.execute(
            "UPDATE emails SET email = ? WHERE id = ?", (event.data.email, event.aggregate_id)
        )

    def on_SubjectForgotten(self, event: Any, tx: Any) -> None:
        tx.execute("DELETE FROM emails WHERE id = ?", (event.aggregate_id,))


def rows(db: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, name, email FROM emails")}


def test_after_forget_and_compaction_no_disk_holds_the_personal_data_or_its_key(
    cleaning_broker: LocalCluster, tmp_path: Path
) -> None:
    bootstrap = cleaning_broker.bootstrap_servers
    config = KafkaConfig(
        bootstrap_servers=bootstrap,
        namespace="t" + uuid.uuid4().hex[:10],
        index_dir=str(tmp_path / "index"),
        partitions=2,
        request_timeout_s=20,
    )
    topics = Topics(config)
    key_topic = config.key_topic()
    settings = {**KEYS.configs(1), **FAST_COMPACTION}
    topics.admin.create_topics([NewTopic(key_topic, 1, 1, config=settings)])[key_topic].result()
    kek = LocalKeyEncryptionKey(os.urandom(32))
    keys = KafkaKeyRing(config, kek)
    app = Application(
        KafkaEventStore(config),
        snapshots=KafkaSnapshotStore(config),
        snapshot_every={"Member": 2},
        keys=keys,
    )
    try:
        member = Member("m-1", NAME, EMAIL)
        member.change_email("second." + EMAIL)
        app.save(member, Member("m-2", "Kept Person", "kept@example.org"))
        db = tmp_path / "emails.db"
        ProjectionRunner(Emails(), config, database=str(db), until_caught_up=True, keys=keys).run()
        assert rows(db)["m-1"] == (NAME, "second." + EMAIL)  # the read model's own copy

        secrets = [NAME.encode(), EMAIL.encode()]
        data_dir = Path(cleaning_broker.data_dir)
        assert all(files_holding(data_dir, s) == [] for s in secrets)  # encrypted before Kafka
        assert topics_holding(bootstrap, secrets) == {}
        (key_record,) = [
            r for r in read_topic(bootstrap, key_topic) if r.key and r.key.endswith(b"/m-1")
        ]
        wrapped = key_record.json()["wrapped"].encode()  # as it lies on disk: base64 in JSON
        assert files_holding(data_dir, wrapped)  # the search finds what is there

        assert app.forget("m-1") is True
        time.sleep(0.3)  # older than segment.ms: the next record rolls the tombstone's segment
        app.save(Member("m-3", "Later Person", "later@example.org"))

        deadline = time.monotonic() + 120
        while files_holding(data_dir, wrapped) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert files_holding(data_dir, wrapped) == [], "the key topic was not compacted"
        assert all(files_holding(data_dir, s) == [] for s in secrets)
        assert topics_holding(bootstrap, [wrapped, *secrets]) == {}
        markers = [r.key for r in read_topic(bootstrap, key_topic)]
        assert b"forgotten/m-1" in markers  # how a reader tells forgotten from not loaded

        # The read model erased its copy; rebuilt from scratch it holds no personal data.
        ProjectionRunner(Emails(), config, database=str(db), until_caught_up=True, keys=keys).run()
        assert "m-1" not in rows(db)
        rebuilt_db = tmp_path / "rebuilt.db"

        class Rebuilt(Emails):
            name = "shred-emails-rebuilt"

        with KafkaKeyRing(config, kek) as fresh_keys:
            ProjectionRunner(
                Rebuilt(), config, database=str(rebuilt_db), until_caught_up=True, keys=fresh_keys
            ).run()
        assert set(rows(rebuilt_db)) == {"m-2", "m-3"}
        assert all(s not in rebuilt_db.read_bytes() for s in secrets)

        # A fresh process: placeholders, every other field, and the business rules.
        with Application(KafkaEventStore(config), keys=KafkaKeyRing(config, kek)) as fresh:
            loaded = fresh.get(Member, "m-1")
            assert (loaded.name, loaded.email, loaded.version) == (FORGOTTEN, FORGOTTEN, 2)
            assert fresh.get(Member, "m-2").email == "kept@example.org"
            fresh.update(Member, "m-1", Member.upgrade)
            assert fresh.get(Member, "m-1").plan == "pro"
            assert fresh.forget("m-1") is False
    finally:
        app.close()


def test_a_wrong_or_missing_kek_fails_at_start_and_writes_nothing(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    right = LocalKeyEncryptionKey(os.urandom(32))
    writer = KafkaKeyRing(kafka_config, right)
    Application(kafka_store, keys=writer).save(Member("m-1", NAME, EMAIL))
    writer.close()
    wrong = os.urandom(32)
    ring = KafkaKeyRing(kafka_config, LocalKeyEncryptionKey(wrong))
    with pytest.raises(
        KeyEncryptionKeyError, match=f"wrapped by key-encryption key {right.key_id}"
    ):
        ring.start()
    ring.close()

    overrides: dict[str, Any] = {
        "bootstrap_servers": kafka_config.bootstrap_servers,
        "namespace": kafka_config.namespace,
        "index_dir": str(tmp_path / "index2"),
    }
    monkeypatch.setenv("KES_KEK", base64.b64encode(wrong).decode())
    with pytest.raises(KeyEncryptionKeyError, match="wrapped by key-encryption key"):
        Application.from_env(**overrides)
    monkeypatch.delenv("KES_KEK")
    monkeypatch.setenv("KES_KEK_FILE", str(tmp_path / "no-such-file"))
    with pytest.raises(KeyEncryptionKeyError, match="no-such-file"):
        Application.from_env(**overrides)
    monkeypatch.delenv("KES_KEK_FILE")
    no_kek = Application.from_env(**overrides)
    with pytest.raises(KeyEncryptionKeyError, match="no key-encryption key is configured"):
        no_kek.save(Member("m-2", NAME, EMAIL))
    no_kek.close()
    assert kafka_store.stream_version("Member", "m-2") == 0


def test_a_forget_in_one_process_reaches_the_others(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    kek = LocalKeyEncryptionKey(os.urandom(32))
    here_keys = KafkaKeyRing(kafka_config, kek)
    here = Application(kafka_store, keys=here_keys)
    there = Application(KafkaEventStore(kafka_config), keys=KafkaKeyRing(kafka_config, kek))
    try:
        here.save(Member("m-1", NAME, EMAIL))
        assert there.get(Member, "m-1").email == EMAIL  # cached there
        here.forget("m-1")
        deadline = time.monotonic() + 20
        while there.get(Member, "m-1").email != FORGOTTEN and time.monotonic() < deadline:
            time.sleep(0.1)
        assert there.get(Member, "m-1").email == FORGOTTEN
        late = there.get(Member, "m-1")
        late.change_email("new@example.org")
        with pytest.raises(SubjectForgottenError):
            there.save(late)
    finally:
        here_keys.close()  # the store is the fixture's
        there.close()


def test_kes_forget_forgets_once_and_names_an_unknown_subject(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    writer = KafkaKeyRing(kafka_config, LocalKeyEncryptionKey(os.urandom(32)))
    Application(kafka_store, keys=writer).save(Member("m-1", NAME, EMAIL))
    writer.close()
    env = {"KES_BOOTSTRAP_SERVERS": kafka_config.bootstrap_servers}
    common = ["--namespace", str(kafka_config.namespace), "--keep-snapshots"]
    first = kes("forget", "m-1", *common, env=env)
    assert first.returncode == 0, first.stderr
    assert "forgot subject 'm-1'" in first.stdout
    again = kes("forget", "m-1", *common, "--json", env=env)
    assert again.returncode == 0 and '"forgotten": false' in again.stdout
    unknown = kes("forget", "nobody", *common, env=env)
    assert unknown.returncode == 1 and "'nobody' has no data key" in unknown.stderr
    assert kafka_store.stream_version("DataSubject", "m-1") == 1


def test_the_http_api_serves_plaintext_then_placeholders(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    from starlette.testclient import TestClient

    from kes.serve import create_app

    keys = KafkaKeyRing(kafka_config, LocalKeyEncryptionKey(os.urandom(32)))
    app = Application(kafka_store, keys=keys)
    app.save(Member("m-1", NAME, EMAIL))
    no_kek = KafkaKeyRing(kafka_config, None)
    try:
        with TestClient(create_app(kafka_store, keys=keys)) as http:

            def member() -> dict[str, Any]:
                response = http.get("/streams/Member/m-1")
                assert response.status_code == 200, response.text
                payload: dict[str, Any] = response.json()["events"][0]["payload"]
                return payload

            assert member()["email"] == EMAIL
            with TestClient(create_app(kafka_store, keys=no_kek)) as without:
                stored = without.get("/streams/Member/m-1").json()["events"][0]
                assert "email" not in stored["payload"] and stored["personal"]  # as stored
            app.forget("m-1")
            assert (member()["email"], member()["plan"]) == (FORGOTTEN, "free")
    finally:
        no_kek.close()
        keys.close()
