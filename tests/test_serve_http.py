"""`kes serve` over HTTP against a real Kafka: every endpoint and every error status.

Each refusal is checked twice: the problem+json names the field, and the log is unchanged
(end offsets of the event topic read before and after, by kes's own reader, and the
stream's version)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from kes import KafkaConfig, KafkaEventStore
from kes.cli import cli
from kes.kafka.consume import end_offsets
from kes.schemas import SchemaRegistry
from kes.serve import ServeSettings, create_app, parse_tokens
from tests.faults import read_topic
from tests.serve_support import ADMIN, APPEND, READ, TOKENS

pytestmark = pytest.mark.kafka

TYPE = "Account"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def append_body(expected: Any, *events: dict[str, Any]) -> dict[str, Any]:
    return {"expectedVersion": expected, "events": list(events)}


def opened(amount: int = 10, **extra: Any) -> dict[str, Any]:
    return {"eventType": "Opened", "payload": {"owner": "ann", "amount": amount}, **extra}


@pytest.fixture
def client(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig, unique: str
) -> Iterator[TestClient]:
    settings = ServeSettings(
        tokens=tuple(parse_tokens(TOKENS, "test")),
        max_body_bytes=16 * 1024,
        max_events_per_append=5,
    )
    with SchemaRegistry(kafka_config, topic=f"{unique}._schemas") as registry:
        app = create_app(kafka_store, settings, registry)
        with TestClient(app) as c:
            yield c


@pytest.fixture
def open_client(kafka_store: KafkaEventStore) -> Iterator[TestClient]:
    """No tokens (loopback only), CORS allowed for one origin."""
    app = create_app(kafka_store, ServeSettings(cors_origins=("http://127.0.0.1:18555",)))
    with TestClient(app) as c:
        yield c


class LogWatch:
    """The event topic's end offsets: an error must leave them where they were."""

    def __init__(self, config: KafkaConfig, store: KafkaEventStore) -> None:
        self.config = config
        self.info = store.topics.ensure_event_topic(TYPE)

    def ends(self) -> dict[int, int]:
        return end_offsets(self.config, self.info.name, self.info.partitions)


@pytest.fixture
def log(kafka_config: KafkaConfig, kafka_store: KafkaEventStore) -> LogWatch:
    return LogWatch(kafka_config, kafka_store)


def create(client: TestClient, stream: str, *events: dict[str, Any]) -> dict[str, Any]:
    r = client.post(
        f"/streams/{TYPE}/{stream}",
        json=append_body(0, *(events or (opened(),))),
        headers=bearer(APPEND),
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


# ---- appends -------------------------------------------------------------------------------


def test_append_is_read_back_by_a_plain_consumer_with_envelope_key_and_headers(
    client: TestClient, kafka_config: KafkaConfig
) -> None:
    event_id = str(uuid.uuid4())
    r = client.post(
        f"/streams/{TYPE}/acc-1",
        json=append_body(0, opened() | {"eventId": event_id, "metadata": {"correlationId": "c-1"}}),
        headers=bearer(APPEND),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["version"] == 1 and body["written"] is True
    assert r.headers["etag"] == '"1"'
    assert r.headers["location"] == f"/streams/{TYPE}/acc-1?from=1"
    (pos,) = body["positions"]
    records = read_topic(kafka_config.bootstrap_servers, kafka_config.topic(TYPE))
    (record,) = [
        x for x in records if x.partition == pos["partition"] and x.offset == pos["offset"]
    ]
    assert record.key == b"acc-1"
    envelope = record.json()
    assert envelope["eventId"] == event_id
    assert envelope["eventType"] == "Opened"
    assert envelope["aggregateType"] == TYPE and envelope["aggregateId"] == "acc-1"
    assert envelope["version"] == 1 and envelope["schemaVersion"] == 1
    assert envelope["payload"] == {"owner": "ann", "amount": 10}
    assert envelope["metadata"] == {"correlationId": "c-1"}
    assert record.headers["eventType"] == b"Opened"
    assert record.headers["schemaVersion"] == b"1"
    assert record.headers["contentType"] == b"application/json"
    assert record.headers["correlationId"] == b"c-1"


def test_stale_expected_version_is_409_naming_the_actual_version_and_writes_nothing(
    client: TestClient, log: LogWatch
) -> None:
    create(client, "acc-2")
    before = log.ends()
    r = client.post(f"/streams/{TYPE}/acc-2", json=append_body(3, opened()), headers=bearer(APPEND))
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["actualVersion"] == 1 and problem["expectedVersion"] == 3
    assert problem["field"] == "expectedVersion" and problem["code"] == "concurrency"
    again = client.post(
        f"/streams/{TYPE}/acc-2", json=append_body(0, opened()), headers=bearer(APPEND)
    )
    assert again.status_code == 409 and again.json()["code"] == "stream_exists"
    assert log.ends() == before


def test_if_match_header_is_the_expected_version(client: TestClient, log: LogWatch) -> None:
    create(client, "acc-3")
    body = {"events": [opened(5)]}
    stale = client.post(
        f"/streams/{TYPE}/acc-3", json=body, headers={**bearer(APPEND), "If-Match": '"7"'}
    )
    assert stale.status_code == 409 and stale.json()["actualVersion"] == 1
    ok = client.post(
        f"/streams/{TYPE}/acc-3", json=body, headers={**bearer(APPEND), "If-Match": '"1"'}
    )
    assert ok.status_code == 201 and ok.json()["version"] == 2
    before = log.ends()
    both = client.post(
        f"/streams/{TYPE}/acc-3",
        json=append_body(1, opened()),
        headers={**bearer(APPEND), "If-Match": '"2"'},
    )
    assert both.status_code == 400 and both.json()["field"] == "If-Match"
    assert log.ends() == before


def test_a_retry_with_the_same_event_ids_is_idempotent(client: TestClient, log: LogWatch) -> None:
    event = opened() | {"eventId": str(uuid.uuid4())}
    first = client.post(
        f"/streams/{TYPE}/acc-4", json=append_body(0, event), headers=bearer(APPEND)
    )
    assert first.status_code == 201
    before = log.ends()
    retry = client.post(
        f"/streams/{TYPE}/acc-4", json=append_body(0, event), headers=bearer(APPEND)
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["written"] is False and retry.json()["version"] == 1
    assert log.ends() == before


def test_expected_any_appends_whatever_the_version(client: TestClient) -> None:
    create(client, "acc-5")
    r = client.post(
        f"/streams/{TYPE}/acc-5",
        json=append_body("any", opened(), opened()),
        headers=bearer(APPEND),
    )
    assert r.status_code == 201 and r.json()["version"] == 3
    assert len(r.json()["positions"]) == 2


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not json", b"{not json", "body"),
    ("an array", b"[]", "body"),
    ("no expectedVersion", {"events": [opened()]}, "expectedVersion"),
    ("expectedVersion a string", {"expectedVersion": "3", "events": [opened()]}, "expectedVersion"),
    ("expectedVersion negative", {"expectedVersion": -1, "events": [opened()]}, "expectedVersion"),
    (
        "expectedVersion a boolean",
        {"expectedVersion": True, "events": [opened()]},
        "expectedVersion",
    ),
    ("no events", {"expectedVersion": 0, "events": []}, "events"),
    ("events an object", {"expectedVersion": 0, "events": {}}, "events"),
    ("an event not an object", {"expectedVersion": 0, "events": [opened(), 3]}, "events[1]"),
    (
        "eventType missing",
        {"expectedVersion": 0, "events": [{"payload": {}}]},
        "events[0].eventType",
    ),
    (
        "eventType a number",
        {"expectedVersion": 0, "events": [{"eventType": 1, "payload": {}}]},
        "events[0].eventType",
    ),
    (
        "payload a list",
        {"expectedVersion": 0, "events": [{"eventType": "X", "payload": [1]}]},
        "events[0].payload",
    ),
    (
        "eventId a number",
        {"expectedVersion": 0, "events": [opened(eventId=5)]},
        "events[0].eventId",
    ),
    (
        "metadata not strings",
        {"expectedVersion": 0, "events": [opened(metadata={"a": 1})]},
        "events[0].metadata",
    ),
    (
        "unknown event field",
        {"expectedVersion": 0, "events": [opened(event_type="X")]},
        "events[0].event_type",
    ),
    ("unknown top field", {"expectedVersion": 0, "events": [opened()], "expected": 1}, "expected"),
    (
        "duplicate event ids",
        {"expectedVersion": 0, "events": [opened(eventId="same"), opened(eventId="same")]},
        "events",
    ),
]


@pytest.mark.parametrize(("why", "body", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_or_wrongly_typed_append_is_400_naming_the_field_and_writes_nothing(
    client: TestClient, log: LogWatch, why: str, body: Any, field: str
) -> None:
    before = log.ends()
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(
        f"/streams/{TYPE}/bad-1",
        content=content,
        headers={**bearer(APPEND), "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["field"] == field, problem
    assert problem["status"] == 400 and problem["type"].startswith("urn:kes:problem:")
    assert log.ends() == before
    assert client.get(f"/streams/{TYPE}/bad-1/version", headers=bearer(READ)).json()["version"] == 0


def test_bad_aggregate_type_in_the_path_is_400_naming_it(client: TestClient) -> None:
    r = client.post("/streams/No.Dots/x", json=append_body(0, opened()), headers=bearer(APPEND))
    assert r.status_code == 400 and r.json()["field"] == "type"


def test_oversize_body_is_413_and_writes_nothing(client: TestClient, log: LogWatch) -> None:
    before = log.ends()
    big = opened() | {"payload": {"blob": "x" * 20_000}}
    r = client.post(f"/streams/{TYPE}/big-1", json=append_body(0, big), headers=bearer(APPEND))
    assert r.status_code == 413
    assert r.json()["field"] == "body" and r.json()["limit"] == 16 * 1024
    # Without Content-Length (chunked), the limit holds while reading.
    chunks = iter([json.dumps(append_body(0, big)).encode()])
    r = client.post(
        f"/streams/{TYPE}/big-1",
        content=chunks,
        headers={**bearer(APPEND), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert log.ends() == before


def test_too_many_events_in_one_append_is_413_naming_events(
    client: TestClient, log: LogWatch
) -> None:
    before = log.ends()
    r = client.post(
        f"/streams/{TYPE}/many-1", json=append_body(0, *[opened()] * 6), headers=bearer(APPEND)
    )
    assert r.status_code == 413 and r.json()["field"] == "events" and r.json()["limit"] == 5
    assert log.ends() == before


def test_a_body_that_is_not_json_is_415(client: TestClient, log: LogWatch) -> None:
    before = log.ends()
    r = client.post(
        f"/streams/{TYPE}/t-1",
        content=json.dumps(append_body(0, opened())),
        headers={**bearer(APPEND), "Content-Type": "text/plain"},
    )
    assert r.status_code == 415 and r.json()["field"] == "Content-Type"
    assert log.ends() == before


# ---- security ------------------------------------------------------------------------------


def test_no_token_is_401_and_writes_nothing(client: TestClient, log: LogWatch) -> None:
    before = log.ends()
    r = client.post(f"/streams/{TYPE}/sec-1", json=append_body(0, opened()))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert client.get(f"/streams/{TYPE}/sec-1").status_code == 401
    assert client.get("/subscriptions/Account").status_code == 401
    wrong = client.post(
        f"/streams/{TYPE}/sec-1", json=append_body(0, opened()), headers=bearer("x" * 30)
    )
    assert wrong.status_code == 401
    assert log.ends() == before


def test_read_token_appending_is_403_and_writes_nothing(client: TestClient, log: LogWatch) -> None:
    before = log.ends()
    r = client.post(f"/streams/{TYPE}/sec-2", json=append_body(0, opened()), headers=bearer(READ))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert log.ends() == before
    assert client.get(f"/streams/{TYPE}/sec-2/version", headers=bearer(READ)).status_code == 200
    # append is not read; admin is everything
    assert client.get(f"/streams/{TYPE}/sec-2/version", headers=bearer(APPEND)).status_code == 403
    r = client.post(f"/streams/{TYPE}/sec-2", json=append_body(0, opened()), headers=bearer(ADMIN))
    assert r.status_code == 201


def test_cookie_token_authorises_reads_but_never_an_append(
    client: TestClient, log: LogWatch
) -> None:
    create(client, "sec-3")
    before = log.ends()
    client.cookies.set("kes_token", ADMIN)
    try:
        assert client.get(f"/streams/{TYPE}/sec-3").status_code == 200
        r = client.post(f"/streams/{TYPE}/sec-3", json=append_body(1, opened()))
        assert r.status_code == 401
    finally:
        client.cookies.clear()
    assert log.ends() == before


def test_basic_auth_password_is_a_token_for_confluent_clients(client: TestClient) -> None:
    import base64

    basic = base64.b64encode(f"svc:{READ}".encode()).decode()
    assert client.get("/subjects", headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_listening_beyond_loopback_without_tokens_is_refused() -> None:
    from kes.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"refusing to listen on 0\.0\.0\.0"):
        ServeSettings().check_listen("0.0.0.0")
    ServeSettings().check_listen("127.0.0.1")
    ServeSettings(tokens=tuple(parse_tokens(TOKENS, "t"))).check_listen("0.0.0.0")
    result = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", "--port", "18999"], env={"KES_SERVE_TOKENS": ""}
    )
    assert result.exit_code != 0
    assert "refusing to listen" in str(result.exception) or "refusing to listen" in result.output


def test_cors_is_off_unless_an_origin_is_configured(
    client: TestClient, open_client: TestClient
) -> None:
    origin = {"Origin": "http://127.0.0.1:18555"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    allowed = open_client.get("/healthz", headers=origin)
    assert allowed.headers["access-control-allow-origin"] == "http://127.0.0.1:18555"
    other = open_client.get("/healthz", headers={"Origin": "http://127.0.0.1:18556"})
    assert "access-control-allow-origin" not in other.headers


# ---- reads ---------------------------------------------------------------------------------


def test_stream_read_pages_by_version_with_etag_and_next(client: TestClient) -> None:
    create(client, "r-1", *[opened(i) for i in range(1, 6)])
    r = client.get(f"/streams/{TYPE}/r-1?from=2&limit=2", headers=bearer(READ))
    assert r.status_code == 200 and r.headers["etag"] == '"5"'
    page = r.json()
    assert [e["version"] for e in page["events"]] == [2, 3]
    assert page["version"] == 5 and page["next"] == f"/streams/{TYPE}/r-1?from=4&limit=2"
    assert [e["payload"]["amount"] for e in page["events"]] == [2, 3]
    assert {"topic", "partition", "offset"} <= set(page["events"][0]["position"])
    last = client.get(page["next"], headers=bearer(READ)).json()
    assert [e["version"] for e in last["events"]] == [4, 5] and last["next"] is None
    upto = client.get(f"/streams/{TYPE}/r-1?from=1&to=2", headers=bearer(READ)).json()
    assert [e["version"] for e in upto["events"]] == [1, 2] and upto["next"] is None
    assert client.get(f"/streams/{TYPE}/r-1/version", headers=bearer(READ)).json() == {"version": 5}


def test_reading_a_missing_stream_is_404_and_bad_parameters_400(client: TestClient) -> None:
    r = client.get(f"/streams/{TYPE}/nobody", headers=bearer(READ))
    assert r.status_code == 404 and r.json()["version"] == 0
    assert client.get(f"/streams/{TYPE}/nobody/version", headers=bearer(READ)).json() == {
        "version": 0
    }
    bad = client.get(f"/streams/{TYPE}/nobody?from=0", headers=bearer(READ))
    assert bad.status_code == 400 and bad.json()["field"] == "from"
    bad = client.get(f"/streams/{TYPE}/nobody?limit=99999", headers=bearer(READ))
    assert bad.status_code == 400 and bad.json()["field"] == "limit"


def test_events_of_a_type_page_from_a_position_and_filter_by_event_type(client: TestClient) -> None:
    for i in range(4):
        create(client, f"t-{i}", opened(i), {"eventType": "Closed", "payload": {"n": i}})
    seen: list[tuple[str, int]] = []
    position = ""
    for _ in range(10):
        page = client.get(f"/streams/{TYPE}?limit=3&from={position}", headers=bearer(READ)).json()
        seen += [(e["aggregateId"], e["version"]) for e in page["events"]]
        position = page["next"]
        assert position.startswith(f"{TYPE}/")
        if page["end"]:
            break
    assert sorted(seen) == sorted((f"t-{i}", v) for i in range(4) for v in (1, 2))
    only = client.get(f"/streams/{TYPE}?eventType=Closed&limit=100", headers=bearer(READ)).json()
    assert {e["eventType"] for e in only["events"]} == {"Closed"} and len(only["events"]) == 4
    bad = client.get(f"/streams/{TYPE}?from=Other/0:1", headers=bearer(READ))
    assert bad.status_code == 400 and bad.json()["field"] == "from"
    assert client.get("/streams/NoSuchType", headers=bearer(READ)).status_code == 404
    types = client.get("/streams", headers=bearer(READ)).json()
    (mine,) = [t for t in types if t["aggregateType"] == TYPE]
    assert mine["offsets"] >= 8 and mine["partitions"] == 4


# ---- schemas, operators, health ------------------------------------------------------------


def test_schema_registry_api_is_served_with_tokens(client: TestClient) -> None:
    schema = json.dumps({"type": "object", "properties": {"owner": {"type": "string"}}})
    subject = f"{TYPE}-Opened"
    body = {"schema": schema, "schemaType": "JSON"}
    assert (
        client.post(f"/subjects/{subject}/versions", json=body, headers=bearer(READ)).status_code
        == 403
    )
    r = client.post(f"/subjects/{subject}/versions", json=body, headers=bearer(ADMIN))
    assert r.status_code == 200 and "id" in r.json()
    assert client.get("/subjects", headers=bearer(READ)).json() == [subject]
    latest = client.get(f"/subjects/{subject}/versions/latest", headers=bearer(READ)).json()
    assert latest["version"] == 1
    missing = client.get("/subjects/nope/versions", headers=bearer(READ))
    assert missing.status_code == 404 and missing.json()["error_code"] == 40401
    level = client.get(f"/config/{subject}?defaultToGlobal=true", headers=bearer(READ)).json()
    assert level["compatibilityLevel"] == "BACKWARD"


def test_projection_lag_and_dead_letters_are_served(
    client: TestClient, kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    from confluent_kafka import TopicPartition

    from kes.kafka.clients import plain_consumer
    from kes.projections.dlq import DeadLetters

    create(client, "p-1", opened(), opened(2))
    name = "ledger"
    group = kafka_config.group_id(name)
    topic = kafka_config.topic(TYPE)
    consumer = plain_consumer(kafka_config, group)
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    consumer.close()

    class Record:  # what DeadLetters needs of a confluent Message
        def key(self) -> bytes:
            return b"p-1"

        def value(self) -> bytes:
            return b'{"broken": true}'

        def headers(self) -> list[tuple[str, bytes]]:
            return []

        def topic(self) -> str:
            return topic

        def partition(self) -> int:
            return 1

        def offset(self) -> int:
            return 7

    dlq = DeadLetters(kafka_config, name)
    dlq.park(Record(), KeyError("amount"), 3)
    dlq.close()
    names = client.get("/projections", headers=bearer(READ)).json()
    assert {"name": name, "state": names[0]["state"], "deadLetterTopic": True} in names
    status = client.get(f"/projections/{name}", headers=bearer(READ)).json()
    assert status["group"] == group
    assert {p["partition"] for p in status["partitions"]} == {0, 1, 2, 3}
    assert status["total_lag"] == sum(p["lag"] for p in status["partitions"]) >= 2
    parked = client.get(f"/projections/{name}/dead-letters", headers=bearer(READ)).json()
    (record,) = parked["records"]
    assert record["offset"] == 7 and "amount" in record["error"] and record["attempts"] == 3
    assert client.get("/projections/nothing-here", headers=bearer(READ)).status_code == 404


def test_health_readiness_openapi_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["kafka"] == "ok"
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/streams/{type}/{id}", "/subscriptions/{type}", "/streams/{type}"} <= set(doc["paths"])
    assert "409" in doc["paths"]["/streams/{type}/{id}"]["post"]["responses"]
    assert client.get("/metrics").status_code == 401
    assert "kes_serve_appends_total" in client.get("/metrics", headers=bearer(READ)).text
    nowhere = client.get("/nowhere")
    assert (
        nowhere.status_code == 404 and nowhere.headers["content-type"] == "application/problem+json"
    )


def test_web_browser_assets_are_served_by_kes_with_no_outside_reference(client: TestClient) -> None:
    page = client.get("/ui/")
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    )
    for asset in ("/ui/app.js", "/ui/app.css"):
        assert client.get(asset).status_code == 200
    everything = page.text + client.get("/ui/app.js").text + client.get("/ui/app.css").text
    assert "http://" not in everything and "https://" not in everything


def test_kafka_unavailable_is_503_with_the_outcome_and_retry_after(
    kafka_config: KafkaConfig,
) -> None:
    store = KafkaEventStore(kafka_config)
    with TestClient(create_app(store, ServeSettings())) as c:
        store.close()  # what a caller sees of a store that cannot write
        r = c.post(f"/streams/{TYPE}/gone", json=append_body(0, opened()))
        assert r.status_code == 503, r.text
        assert r.json()["outcome"] == "not_written" and r.headers["retry-after"] == "1"


def test_a_wrong_method_is_405_as_problem_json(client: TestClient) -> None:
    r = client.delete(f"/streams/{TYPE}/x", headers=bearer(ADMIN))
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
