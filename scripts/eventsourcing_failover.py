"""Soak: two processes of the eventsourcing bank example transfer money between the same
accounts; one of them is killed (kill -9) mid-race, and whichever owned the log's
partition, the survivor carries on once kes fails the partition over. Each round is then
checked by a plain Kafka consumer: gapless log, each account's versions 1..n, every debit
followed by its credit in the same insert, no money created or lost. Prints one JSON line
per round.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python scripts/eventsourcing_failover.py --rounds 4
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

from tests.es_race import check_transfers_only, read_bank_log, run_race  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--commands", type=int, default=60, help="per thread")
    ap.add_argument("--accounts", type=int, default=6)
    ap.add_argument("--kill-after", type=float, default=2.0, help="seconds into the race")
    args = ap.parse_args()
    bootstrap = os.environ.get("KES_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    with tempfile.TemporaryDirectory(prefix="kes-es-failover-") as tmp:
        for n in range(args.rounds):
            namespace = "failover" + uuid.uuid4().hex[:8]
            env = {
                "PERSISTENCE_MODULE": "kes.integrations.eventsourcing",
                "KES_BOOTSTRAP_SERVERS": bootstrap,
                "KES_NAMESPACE": namespace,
                "KES_INDEX_DIR": str(Path(tmp) / "index"),
                "KES_SESSION_TIMEOUT_MS": "6000",
            }
            race = run_race(
                env,
                Path(tmp) / f"round-{n}",
                processes=2,
                threads=args.threads,
                commands=args.commands,
                accounts=args.accounts,
                seed=n,
                ops="transfer",
                kill_after_s=args.kill_after,
            )
            race.records = read_bank_log(bootstrap, f"{namespace}.events.BankAccounts")
            print(json.dumps({"round": n, **check_transfers_only(race)}), flush=True)


if __name__ == "__main__":
    main()
