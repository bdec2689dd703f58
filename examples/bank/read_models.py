"""Read model of the bank example: the balance of every account.

Amounts travel as decimal strings; balances are kept as exact decimal strings too
(SQL floats would round). Run it:
  kes project run examples.bank.read_models:AccountBalances
"""

from __future__ import annotations

from decimal import Decimal

from examples.bank.domain import Account
from kes.projections import ProjectionEvent, SqlProjection, Tx


class AccountBalances(SqlProjection):
    """Owner, balance and open/closed per account; exactly once into SQL."""

    name = "examples.bank.balances"
    aggregates = (Account,)  # its events, upcast to the current schema versions
    database = "sqlite:///.kes/bank.db"

    def setup(self, tx: Tx) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS account_balances (account_id TEXT PRIMARY KEY, "
            "owner TEXT NOT NULL, balance TEXT NOT NULL, open BOOLEAN NOT NULL)"
        )

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM account_balances")

    def on_AccountOpened(self, event: ProjectionEvent, tx: Tx) -> None:
        tx.execute(
            "INSERT INTO account_balances (account_id, owner, balance, open) "
            "VALUES (?, ?, '0', TRUE)",
            (event.aggregate_id, event.payload["owner"]),
        )

    def on_MoneyDeposited(self, event: ProjectionEvent, tx: Tx) -> None:
        self._add(tx, event.aggregate_id, Decimal(event.payload["amount"]))

    def on_MoneyWithdrawn(self, event: ProjectionEvent, tx: Tx) -> None:
        self._add(tx, event.aggregate_id, -Decimal(event.payload["amount"]))

    def on_AccountClosed(self, event: ProjectionEvent, tx: Tx) -> None:
        tx.execute(
            "UPDATE account_balances SET open = FALSE WHERE account_id = ?", (event.aggregate_id,)
        )

    def _add(self, tx: Tx, account_id: str, amount: Decimal) -> None:
        rows = tx.query("SELECT balance FROM account_balances WHERE account_id = ?", (account_id,))
        if not rows:
            raise LookupError(f"account {account_id!r} has money moving before it was opened.")
        balance = Decimal(str(rows[0][0])) + amount
        tx.execute(
            "UPDATE account_balances SET balance = ? WHERE account_id = ?",
            (str(balance), account_id),
        )


def balance(tx: Tx, account_id: str) -> Decimal | None:
    rows = tx.query("SELECT balance FROM account_balances WHERE account_id = ?", (account_id,))
    return Decimal(str(rows[0][0])) if rows else None


class OverdraftAlerts(SqlProjection):
    """The alerts of the ``monitoring`` pipeline (examples/bank/streams.py), exactly once
    into SQL: a stream's results read like any other events.

    Run it: kes project run examples.bank.read_models:OverdraftAlerts
    """

    name = "examples.bank.overdraft-alerts"
    aggregate_types = ("AccountRisk",)
    database = "sqlite:///.kes/bank.db"

    def setup(self, tx: Tx) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS overdraft_alerts (account_id TEXT NOT NULL, "
            "alert INTEGER NOT NULL, refusals INTEGER NOT NULL, at_ms BIGINT NOT NULL, "
            "PRIMARY KEY (account_id, alert))"
        )

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM overdraft_alerts")

    def on_OverdraftAlertRaised(self, event: ProjectionEvent, tx: Tx) -> None:
        tx.execute(
            "INSERT INTO overdraft_alerts (account_id, alert, refusals, at_ms) VALUES (?, ?, ?, ?)",
            (event.aggregate_id, event.version, event.payload["refusals"], event.payload["at"]),
        )
