"""`kes serve`'s pure parts, without Kafka: the append body, positions (SSE ids), tokens,
error mapping and the shared tail's bounds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner

from kes import ANY, NO_STREAM
from kes.cli import cli
from kes.errors import (
    ConcurrencyError,
    EventTooLargeError,
    InvalidInputError,
    NotOwnerError,
    StreamExistsError,
)
from kes.serve.append import parse_append, parse_if_match
from kes.serve.cursor import Cursor, parse_cursor
from kes.serve.problems import Problem, from_kes_error
from kes.serve.settings import ServeSettings, is_loopback, parse_tokens
from kes.serve.tail import Entry, Tail


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_append_body_becomes_new_events_keeping_event_ids() -> None:
    parsed = parse_append(
        body(
            {
                "expectedVersion": 4,
                "events": [
                    {
                        "eventType": "A",
                        "payload": {"x": 1},
                        "eventId": "e-1",
                        "metadata": {"k": "v"},
                    },
                    {"eventType": "B", "payload": {}, "schemaVersion": 2},
                ],
            }
        ),
        None,
        10,
    )
    assert parsed.expected == 4
    first, second = parsed.events
    assert (first.event_type, first.payload, first.event_id, first.metadata) == (
        "A",
        {"x": 1},
        "e-1",
        {"k": "v"},
    )
    assert second.schema_version == 2 and second.event_id  # a fresh id when none is given


def test_expected_version_zero_means_no_stream_and_any_means_any() -> None:
    events = [{"eventType": "A", "payload": {}}]
    assert (
        parse_append(body({"expectedVersion": 0, "events": events}), None, 10).expected is NO_STREAM
    )
    assert (
        parse_append(body({"expectedVersion": "any", "events": events}), None, 10).expected is ANY
    )
    assert parse_append(body({"events": events}), '"3"', 10).expected == 3
    assert parse_append(body({"events": events}), 'W/"0"', 10).expected is NO_STREAM


@pytest.mark.parametrize("value", ['"x"', '"3', '"-1"', "", "*"])
def test_if_match_that_is_not_a_quoted_version_is_refused(value: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_if_match(value)
    assert caught.value.status == 400 and caught.value.field == "If-Match"


def test_too_many_events_is_413() -> None:
    with pytest.raises(Problem) as caught:
        parse_append(
            body({"expectedVersion": 0, "events": [{"eventType": "A", "payload": {}}] * 3}), None, 2
        )
    assert caught.value.status == 413 and caught.value.field == "events"


def test_positions_round_trip_and_name_only_what_was_delivered() -> None:
    cursor = Cursor({"User": {}, "Order": {2: 5}})
    assert str(cursor) == "Order/2:5;User/"
    cursor.advance("User", 3, 153)
    cursor.advance("User", 0, 9)
    assert str(cursor) == "Order/2:5;User/0:10,3:154"
    again = parse_cursor(str(cursor), ["User", "Order"], "Last-Event-ID")
    assert again == cursor
    assert again.next_offset("User", 3) == 154 and again.next_offset("User", 1) == 0


@pytest.mark.parametrize("text", ["User", "Other/0:1", "User/0-1", "User/x:1", "User/0:"])
def test_a_malformed_position_is_400_naming_where_it_came_from(text: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_cursor(text, ["User"], "Last-Event-ID")
    assert caught.value.status == 400 and caught.value.field == "Last-Event-ID"


def test_tokens_are_parsed_with_roles_and_admin_allows_everything() -> None:
    tokens = parse_tokens(
        "# ops\nreader-0123456789abcdef read r\nadmin-0123456789abcdef admin;", "f"
    )
    reader, admin = tokens
    assert reader.allows("read") and not reader.allows("append") and reader.name == "r"
    assert admin.allows("append") and admin.allows("read")
    settings = ServeSettings(tokens=tuple(tokens))
    assert settings.token("reader-0123456789abcdef") is reader and settings.token("nope") is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("short read", "at least 16"),
        ("x" * 20 + " write", "unknown role"),
        ("x" * 20, "TOKEN ROLES"),
    ],
)
def test_bad_token_entries_are_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        parse_tokens(text, "tokens.txt")


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "::", "example"]))


def test_store_errors_map_to_statuses_a_client_can_act_on() -> None:
    conflict = from_kes_error(ConcurrencyError("User", "u", 3, 5))
    assert (
        conflict.status,
        conflict.extra["actualVersion"],
        conflict.extra["expectedVersion"],
    ) == (409, 5, 3)
    exists = from_kes_error(StreamExistsError("User", "u", NO_STREAM, 1))
    assert exists.status == 409 and exists.extra["expectedVersion"] == 0
    assert from_kes_error(EventTooLargeError("big")).status == 413
    assert from_kes_error(InvalidInputError("bad"), "events").field == "events"
    moving = from_kes_error(NotOwnerError("moving"))
    assert moving.status == 503 and moving.extra["outcome"] == "not_written"
    assert moving.headers["Retry-After"] == "1"


def test_the_shared_tail_stays_within_its_bounds_and_knows_what_it_covers() -> None:
    async def run() -> None:
        tail = Tail(gateway=None, aggregate_type="User", max_events=3, max_bytes=10_000)  # type: ignore[arg-type]
        tail.floor, tail.head = {0: 10, 1: 0}, {0: 10, 1: 0}
        tail._pending = [Entry(0, 10 + i, "E", b"data: x\n\n") for i in range(4)] + [
            Entry(1, 0, "E", b"d\n\n")
        ]
        tail._flush()
        assert len(tail.entries) == 3 and tail.base_seq == 2  # two evicted
        assert tail.floor == {0: 12, 1: 0} and tail.head == {0: 14, 1: 1}
        assert not tail.covers({0: 11, 1: 0}) and tail.covers({0: 12})
        assert tail.start_seq({0: 13, 1: 0}) == 3  # the entry at offset 13
        assert tail.start_seq({0: 14, 1: 1}) == tail.next_seq == 5
        assert [e.offset for e in tail.read(2, 1)] == [12]  # stops at the byte bound

    asyncio.run(run())


def test_kes_serve_has_help_and_refuses_half_a_tls_setup() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", "--help"])
    assert (
        result.exit_code == 0
        and "--max-body-bytes" in result.output
        and "--tokens" in result.output
    )
    refused = runner.invoke(cli, ["serve", "--ssl-certfile", __file__])
    assert refused.exit_code != 0
