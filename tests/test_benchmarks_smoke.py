"""The benchmark harness's pure parts work: no Kafka, no timing assertions."""

from __future__ import annotations

import math

from benchmarks.baselines import parse_producer_performance
from benchmarks.common import ENV_KEYS, Stat, environment, latency_ms, markdown_table, percentile
from benchmarks.harness import Measure
from benchmarks.report import render
from benchmarks.targets import targets


def test_percentile_interpolates_and_handles_edges() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([5.0], 99.9) == 5.0
    assert percentile(list(range(101)), 99) == 99.0
    assert math.isnan(percentile([], 50))


def test_latency_ms_reports_the_four_quantiles_in_milliseconds() -> None:
    lat = latency_ms([0.001] * 99 + [0.1])
    assert set(lat) == {"p50", "p95", "p99", "p99.9", "n"}
    assert lat["p50"] == 1.0 and lat["n"] == 100


def test_stat_is_median_with_min_and_max() -> None:
    s = Stat.of([3.0, 1.0, 10.0])
    assert (s.median, s.low, s.high) == (3.0, 1.0, 10.0)
    assert s.fmt() == "3.00 (1.00-10.00)"
    assert Stat.of([1234.0, 1000.0, 2000.0]).fmt() == "1,234 (1,000-2,000)"


def test_markdown_table_escapes_pipes() -> None:
    text = markdown_table(["a", "b"], [["x|y", 1]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_environment_has_every_key_the_report_shows() -> None:
    env = environment({"acks": "all", "nodes": 1})
    assert set(ENV_KEYS) <= set(env)
    assert env["cores"] and env["broker"]["acks"] == "all"


def test_producer_performance_summary_is_parsed() -> None:
    line = (
        "50000 records sent, 31556.2 records/sec (3.01 MB/sec), 250.11 ms avg latency, "
        "612.00 ms max latency, 240 ms 50th, 500 ms 95th, 580 ms 99th, 610 ms 99.9th."
    )
    got = parse_producer_performance("warming up\n" + line)
    assert got["records_per_s"] == 31556.2 and got["p999_ms"] == 610
    assert parse_producer_performance("no summary") == {}


def _measures() -> list[Measure]:
    def m(workload: str, name: str, value: float, **params: object) -> Measure:
        return Measure(workload, name, "x", Stat.of([value] * 3), dict(params))

    batched = m("append", "conditional append", 60_000, writers=16, batch=100, event_size=100)
    batched.params["streams"] = "uniform"
    # each kes run is paired with a raw-producer run, the order alternating
    batched.extra["paired_raw_producer"] = [100_000.0, 120_000.0, 80_000.0]
    batched.extra["paired_ratio"] = [0.6, 0.5, 0.75]
    return [
        m("baselines", "raw confluent-kafka producer", 100_000, event_size=100),
        batched,
        m("rehydrate", "read_stream", 25.0, stream_length=1000),
    ]


def test_targets_are_ratios_marked_met_or_not() -> None:
    ts = {t.claim.split(" >=")[0].split(" p99")[0]: t for t in targets(_measures())}
    batched = ts["batched appends (100 events each)"]
    assert batched.ratio == 0.6 and batched.met is True
    assert ts["read_stream of 1k events"].met is False
    assert ts["cached load"].met is None  # not measured in this run


def test_render_shows_command_targets_environment_and_plots() -> None:
    result = {"environment": environment(), "runs": 3, "notes": ["a note"], "timings": {}}
    text = render(result, _measures(), ["append_throughput.png"], "python -m benchmarks")
    for part in ("`python -m benchmarks`", "## Targets", "## Environment", "a note"):
        assert part in text
    assert "![append](results/append_throughput.png)" in text
    assert "**NOT met**" in text and "**met**" in text


def test_domain_table_compares_kes_with_each_peer_of_the_same_durability() -> None:
    from benchmarks.report import domain_table

    def m(system: str, durability: str, value: float) -> Measure:
        params: dict[str, object] = {
            "system": system,
            "durability": durability,
            "cache": "off",
            "callers": 64,
        }
        return Measure("domain", "users", "commands/s", Stat.of([value] * 3), params)

    text = domain_table(
        [
            m("kes, 1 node", "a: single", 3000.0),
            m("eventsourcing, SQLite synchronous=NORMAL", "a: single", 600.0),
            m("eventsourcing, SQLite synchronous=FULL", "b: fsync", 300.0),
        ]
    )
    assert (
        "| a | off | 64 | kes, 1 node | eventsourcing, SQLite synchronous=NORMAL | 5.00 |" in text
    )
    assert "synchronous=FULL" not in text  # another durability: not compared
