"""``python -m benchmarks [WORKLOAD ...] [--quick]``: run named workloads against real Kafka
and write JSON, a Markdown report with targets and ratios, and PNG plots.

Workloads: baselines, append, rehydrate, replay, recovery, streams, domain (default: all).
The full run writes ``benchmarks/RESULTS.md``, ``benchmarks/results/results.json`` and
``benchmarks/results/*.png``, after copying the committed ``results.json`` to
``results/previous.json`` (the report shows both); ``--quick`` writes under
``benchmarks/results/quick/``. ``store``, ``schemas`` and ``projections`` run the
single-file suites of those issues.

Kafka: ``KES_BOOTSTRAP_SERVERS`` (or ``--bootstrap``); a 3-node local cluster for the
replicated measures: ``--cluster3-dir`` (its ``kes broker start --nodes 3 --data-dir``).
PostgreSQL (for the eventsourcing comparison): ``KES_POSTGRES_DSN``, else
``scripts/postgres.sh`` is run when present.

Exits non-zero when a workload or a measure failed (a NaN run, an empty window, a missed
rate, failed appends); a target that is only NOT met is a result, not a failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import ROOT, environment
from benchmarks.compare import load
from benchmarks.harness import Bench

WORKLOADS = ("baselines", "append", "rehydrate", "replay", "recovery", "streams", "domain")
MODULES = {"domain": "es_compare"}
LEGACY = ("store", "schemas", "projections")
HERE = Path(__file__).resolve().parent


def cluster_nodes(bootstrap: str) -> int:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15)
    return len(md.brokers)


def postgres_dsn(bench: Bench) -> str | None:
    """KES_POSTGRES_DSN, else what scripts/postgres.sh starts (its KES_PG_DIR/KES_PG_PORT
    choose where); None, with a note saying why, when neither gives one."""
    dsn = os.environ.get("KES_POSTGRES_DSN")
    if dsn:
        return dsn
    script = ROOT / "scripts" / "postgres.sh"
    if not script.exists():
        bench.note("no PostgreSQL: set KES_POSTGRES_DSN (scripts/postgres.sh is missing)")
        return None
    try:
        proc = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        bench.note("no PostgreSQL: scripts/postgres.sh timed out")
        return None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return lines[-1]
    bench.note(f"no PostgreSQL: scripts/postgres.sh failed: {proc.stderr.strip()[-300:]}")
    return None


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run kes benchmark workloads and write a report."
    )
    ap.add_argument("workloads", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default all)")
    ap.add_argument("--quick", action="store_true", help="small sizes: everything in < 5 min")
    ap.add_argument("--runs", type=int, default=3, help="runs per measure (median, min-max)")
    ap.add_argument(
        "--bootstrap", default=os.environ.get("KES_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    ap.add_argument("--no-postgres", action="store_true", help="skip eventsourcing on PostgreSQL")
    ap.add_argument(
        "--cluster3-dir",
        type=Path,
        default=os.environ.get("KES_BENCH_CLUSTER3_DIR"),
        help="data folder of a running 3-node `kes broker` cluster (replicated measures)",
    )
    ap.add_argument("--out", type=Path, help="folder for RESULTS.md (plots go in its results/)")
    ap.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: rebuild RESULTS.md and plots from a results.json",
    )
    return ap.parse_args()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in LEGACY:
        name = sys.argv[1]
        sys.argv = [f"benchmarks.{name}", *sys.argv[2:]]
        importlib.import_module(f"benchmarks.{name}").main()
        return
    args = parse()
    if args.render is not None:
        rerender(args.render, args.out or args.render.resolve().parent.parent)
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("benchmarks").setLevel(logging.INFO)
    names = args.workloads or list(WORKLOADS)
    for n in names:
        if n not in WORKLOADS:
            raise SystemExit(f"unknown workload {n!r}; choose from {', '.join(WORKLOADS)}")
    env_vars = "".join(
        f"{k}={shlex.quote(os.environ[k])} "
        for k in ("KES_BOOTSTRAP_SERVERS", "KES_POSTGRES_DSN")
        if k in os.environ
    )
    argv = "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    command = f"{env_vars}python -m benchmarks{argv}"
    out = args.out or (HERE / "results" / "quick" if args.quick else HERE)
    if args.runs < 3:
        print("note: fewer than 3 runs per measure; medians are less trustworthy", file=sys.stderr)
    nodes = cluster_nodes(args.bootstrap)
    bench = Bench(
        bootstrap=args.bootstrap,
        quick=args.quick,
        runs=args.runs,
        nodes=nodes,
        replication_factor=min(3, nodes),
    )
    if args.cluster3_dir is not None:
        from kes.broker.cluster import LocalCluster

        cluster = LocalCluster.load(args.cluster3_dir)
        if cluster is None or len(cluster.running()) != 3:
            raise SystemExit(f"--cluster3-dir {args.cluster3_dir}: no running 3-node cluster")
        bench.cluster3, bench.cluster3_dir = cluster.bootstrap_servers, str(args.cluster3_dir)
    previous = keep_previous(out)
    if "domain" in names and not args.no_postgres:
        bench.postgres_dsn = postgres_dsn(bench)
    env = environment(bench.broker_settings())
    started = time.monotonic()
    for name in names:
        module = importlib.import_module(f"benchmarks.{MODULES.get(name, name)}")
        run: Callable[[Bench], None] = module.run
        t = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            run(bench)
        except Exception as exc:
            traceback.print_exc()
            bench.note(f"workload {name} failed: {type(exc).__name__}: {exc}")
        bench.timings[name] = time.monotonic() - t
    total = time.monotonic() - started
    bench.timings["total"] = total
    bench.cleanup()
    write_outputs(bench, env, out, command, previous)
    budget = 300 if args.quick else 2400
    print(f"done in {total:.0f}s (budget {budget}s); report: {out / 'RESULTS.md'}")
    if total > budget:
        print(f"warning: over the {budget}s budget", file=sys.stderr)
    failed = [m for m in bench.measures if m.failures]
    broken = [n for n in bench.notes if n.startswith("workload ")]
    if failed or broken:
        for m in failed:
            print(f"FAILED: {m.workload}: {m.label()}: {'; '.join(m.failures)}", file=sys.stderr)
        for n in broken:
            print(f"FAILED: {n}", file=sys.stderr)
        sys.exit(1)


def keep_previous(out: Path) -> dict[str, object] | None:
    """The previous run, for the report: a full run into the committed folder copies the
    committed results.json to results/previous.json before anything is overwritten."""
    committed = HERE / "results" / "results.json"
    kept = HERE / "results" / "previous.json"
    if out.resolve() == HERE and committed.exists():
        shutil.copyfile(committed, kept)
        return load(kept)
    return load(committed)


def write_outputs(
    bench: Bench,
    env: dict[str, object],
    out: Path,
    command: str,
    previous: dict[str, object] | None,
) -> None:
    from dataclasses import asdict

    from benchmarks import report
    from benchmarks.plots import plot
    from benchmarks.targets import targets

    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    if bench.quick:
        (out / ".gitignore").write_text("# quick runs are for checking the harness\n*\n")
    result = {
        "command": command,
        "environment": env,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "runs": bench.runs,
        "quick": bench.quick,
        "notes": bench.notes,
        "timings": bench.timings,
        "measures": [m.to_json() for m in bench.measures],
        "targets": [asdict(t) | {"verdict": t.verdict} for t in targets(bench.measures)],
    }
    (results / "results.json").write_text(json.dumps(result, indent=2, default=str))
    try:
        plots = plot(bench.measures, results)
    except ImportError as exc:
        bench.note(f"no plots: {exc} (pip install matplotlib)")
        plots = []
    text = report.render(result, bench.measures, plots, command, previous)
    (out / "RESULTS.md").write_text(text)


def rerender(path: Path, out: Path) -> None:
    """RESULTS.md and plots again from the measures a run saved (same command, same env)."""
    from benchmarks import report
    from benchmarks.compare import measures_of
    from benchmarks.plots import plot

    result = json.loads(path.read_text())
    measures = measures_of(result)
    plots = plot(measures, out / "results")
    previous = load(path.parent / "previous.json")
    text = report.render(result, measures, plots, result["command"], previous)
    (out / "RESULTS.md").write_text(text)
    print(f"rendered {out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
