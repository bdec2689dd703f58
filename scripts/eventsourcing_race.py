"""Soak: the eventsourcing bank example's processes race on the same accounts, round after
round, each round checked by a plain Kafka consumer (gapless log, each account's versions
1..n, exactly the successful commands recorded, money conserved, every refusal the
library's IntegrityError). Prints one JSON line per round, then a total.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python scripts/eventsourcing_race.py \
        --rounds 10 --processes 3 --threads 4 --commands 40 --accounts 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.es_race import check_race, read_bank_log, run_race  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--commands", type=int, default=30, help="per thread")
    ap.add_argument("--accounts", type=int, default=3)
    args = ap.parse_args()
    bootstrap = os.environ.get("KES_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    totals = {"rounds": 0, "commands": 0, "ok": 0, "conflict": 0, "refused": 0, "events": 0}
    with tempfile.TemporaryDirectory(prefix="kes-es-race-") as tmp:
        for n in range(args.rounds):
            namespace = "race" + uuid.uuid4().hex[:8]
            env = {
                "PERSISTENCE_MODULE": "kes.integrations.eventsourcing",
                "KES_BOOTSTRAP_SERVERS": bootstrap,
                "KES_NAMESPACE": namespace,
                "KES_INDEX_DIR": str(Path(tmp) / "index"),
            }
            race = run_race(
                env,
                Path(tmp) / f"round-{n}",
                processes=args.processes,
                threads=args.threads,
                commands=args.commands,
                accounts=args.accounts,
                seed=n,
            )
            race.records = read_bank_log(bootstrap, f"{namespace}.events.BankAccounts")
            summary = check_race(race)
            print(json.dumps({"round": n, **summary}), flush=True)
            totals["rounds"] += 1
            for key in ("commands", "ok", "conflict", "refused", "events"):
                totals[key] += summary[key]
    print(json.dumps({"total": totals, "settings": vars(args)}))


if __name__ == "__main__":
    main()
