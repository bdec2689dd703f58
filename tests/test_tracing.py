"""Traces from a command to the handlers of its events, against real Kafka: recorded with
OpenTelemetry's SDK (in-memory exporter) in a process of their own, read back from the
log with a plain consumer; and the same flow with OpenTelemetry not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from typing import Any

import pytest

from kes.store.kafka import KafkaConfig
from tests.serve_support import ROOT

pytestmark = [pytest.mark.kafka]


def run_traced(config: KafkaConfig, mode: str) -> dict[str, Any]:
    fields = asdict(config)
    fields.pop("client")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.workers.traced",
            "--config",
            json.dumps(fields),
            "--mode",
            mode,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_one_trace_holds_the_command_its_append_and_each_handler(
    kafka_config: KafkaConfig,
) -> None:
    out = run_traced(kafka_config, "sdk")
    assert out["tracing_active"]
    spans = out["spans"]
    (command,) = [s for s in spans if s["name"] == "register user"]
    appends = [s for s in spans if s["name"] == "kes.append User"]
    assert len(appends) == 2  # u1 under the command, u2 under the HTTP caller's trace
    (append,) = [a for a in appends if a["trace"] == command["trace"]]
    assert append["parent"] == command["id"] and append["kind"] == "PRODUCER"

    # Both events of u1 carry the append span's context, in the envelope and the headers.
    u1 = [r for r in out["records"] if r["aggregateId"] == "u1"]
    assert len(u1) == 2
    traceparent = f"00-{command['trace']}-{append['id']}"  # then the flags
    for r in u1:
        assert r["metadata"]["traceparent"].startswith(traceparent + "-")
        assert r["headers"]["traceparent"] == r["metadata"]["traceparent"]

    # Each handler call is a span of that trace, a child of the append.
    handles = [s for s in spans if s["name"] == "kes.handle traced-directory"]
    of_u1 = [h for h in handles if h["trace"] == command["trace"]]
    assert len(of_u1) == 2 and out["handled"].count("u1") == 2
    assert all(h["parent"] == append["id"] and h["kind"] == "CONSUMER" for h in of_u1)

    # u2 was saved under an incoming W3C trace context: its append and handler join it.
    incoming_trace = "0af7651916cd43dd8448eb211c80319c"
    (append2,) = [a for a in appends if a["trace"] == incoming_trace]
    assert append2["parent"] == "b7ad6b7169203331"
    (u2,) = [r for r in out["records"] if r["aggregateId"] == "u2"]
    assert u2["headers"]["traceparent"].startswith(f"00-{incoming_trace}-{append2['id']}-")
    (handle2,) = [h for h in handles if h["trace"] == incoming_trace]
    assert handle2["parent"] == append2["id"]


def test_without_opentelemetry_nothing_breaks_and_nothing_is_added(
    kafka_config: KafkaConfig,
) -> None:
    out = run_traced(kafka_config, "absent")
    assert not out["tracing_active"]
    assert out["handled"] == ["u1"]
    (record,) = out["records"]
    assert "traceparent" not in record["metadata"]
    assert "traceparent" not in record["headers"]
    assert record["headers"]["eventType"] == "UserCreated"
