"""One process of the eventsourcing bank example racing others on the same accounts.

It uses the example application unchanged, on whatever persistence the environment
names, and logs each command's outcome as one JSON line: ``ok``, ``conflict`` (the
library's IntegrityError), ``refused`` (the account's own rule), ``unavailable`` (the
library's OperationalError: the store did not answer in time, e.g. during a failover) or
``error`` (anything else, which a correct store never causes)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import threading
import time
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError
from examples.eventsourcing_bank.application import BankAccounts
from examples.eventsourcing_bank.domain import TransactionError


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", required=True, help="JSON list of account ids")
    ap.add_argument("--commands", type=int, default=100, help="per thread")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready", required=True, help="file written once warmed up")
    ap.add_argument("--go", required=True, help="file to wait for before racing")
    ap.add_argument("--ops", default="deposit,withdraw,transfer,transfer", help="to pick from")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    accounts = [UUID(a) for a in json.loads(args.accounts)]
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def log(**fields: object) -> None:
        os.write(fd, (json.dumps(fields) + "\n").encode())

    with BankAccounts() as bank:
        for account in accounts:  # warm up: read every account once
            bank.get_balance(account)
        Path(args.ready).write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not Path(args.go).exists() and time.monotonic() < deadline:
            time.sleep(0.01)

        def work(seed: int) -> None:
            rnd = random.Random(seed)
            ops = args.ops.split(",")
            for _ in range(args.commands):
                op = rnd.choice(ops)
                a, b = rnd.sample(accounts, 2)
                amount = Decimal(rnd.randint(1, 40))
                fields: dict[str, object] = {"op": op, "a": str(a), "amount": str(amount)}
                try:
                    if op == "deposit":
                        bank.deposit(a, amount)
                    elif op == "withdraw":
                        bank.withdraw(a, amount)
                    else:
                        fields["b"] = str(b)
                        bank.transfer(a, b, amount)
                    log(outcome="ok", **fields)
                except IntegrityError as exc:
                    log(outcome="conflict", error=type(exc).__name__, **fields)
                except TransactionError as exc:
                    log(outcome="refused", error=type(exc).__name__, **fields)
                except OperationalError as exc:
                    log(outcome="unavailable", error=str(getattr(exc, "outcome", "")), **fields)
                except Exception as exc:
                    log(outcome="error", error=f"{type(exc).__name__}: {exc}", **fields)

        threads = [
            threading.Thread(target=work, args=(args.seed * 1000 + i,)) for i in range(args.threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


if __name__ == "__main__":
    main()
