"""Money transfers between accounts, driven by a process manager.

A transfer touches two aggregates, and no Kafka write spans two partitions, so it
runs as a chain of single-aggregate steps, each triggered by the previous event:

    TransferRequested -> withdraw from source -> SourceDebited
    SourceDebited     -> deposit to destination -> TransferCompleted
    any step refused  -> (refund source if debited) -> TransferFailed

Each account command carries a transaction id derived from the transfer id, so a
step re-run after a crash or a re-delivered event changes nothing twice; each
transfer step checks the transfer's status first for the same reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

from examples.bank.domain import Account
from kes import (
    Aggregate,
    AggregateNotFoundError,
    Application,
    DomainError,
    RecordedEvent,
    event,
)

REQUESTED, DEBITED, COMPLETED, FAILED = "requested", "debited", "completed", "failed"


class Transfer(Aggregate, id_field="transfer_id"):
    """The state of one transfer: requested, debited, then completed or failed."""

    amount: Decimal

    @event("TransferRequested")
    def __init__(self, transfer_id: str, source: str, destination: str, amount: Decimal) -> None:
        self.source = source
        self.destination = destination
        self.amount = amount
        self.status = REQUESTED
        self.reason = ""

    @classmethod
    def request(
        cls, source: str, destination: str, amount: Decimal, transfer_id: str | None = None
    ) -> Transfer:
        """A new transfer of ``amount`` (> 0) between two different accounts."""
        if amount <= 0:
            raise DomainError(f"a transfer amount must be positive, got {amount}.")
        if source == destination:
            raise DomainError(f"cannot transfer from account {source!r} to itself.")
        return cls(transfer_id or str(uuid.uuid4()), source, destination, amount)

    def record_debited(self) -> None:
        if self.status == REQUESTED:
            self._source_debited()

    def complete(self) -> None:
        if self.status == DEBITED:
            self._completed()

    def fail(self, reason: str) -> None:
        if self.status in (REQUESTED, DEBITED):
            self._failed(reason, self.status == DEBITED)

    @event("SourceDebited")
    def _source_debited(self) -> None:
        self.status = DEBITED

    @event("TransferCompleted")
    def _completed(self) -> None:
        self.status = COMPLETED

    @event("TransferFailed")
    def _failed(self, reason: str, refunded: bool) -> None:
        self.status = FAILED
        self.reason = reason


class TransferProcessManager:
    """Reacts to Transfer events by sending commands to accounts and transfers.

    ``run_until_idle`` reads the Transfer events it has not handled yet (positions
    kept in memory here; a real deployment runs it as a projection with a
    checkpoint) until none are left. ``handle`` is idempotent, so at-least-once
    delivery is enough.
    """

    def __init__(self, app: Application, attempts: int = 5) -> None:
        self.app = app
        self.attempts = attempts
        self.positions: dict[int, int] = {}

    def run_until_idle(self) -> int:
        """Handle every pending Transfer event, including those handling produces."""
        handled = 0
        while True:
            batch = list(self.app.store.read_all("Transfer", self.positions))
            if not batch:
                return handled
            for rec in batch:
                self.handle(rec)
                self.positions[rec.position.partition] = rec.position.offset + 1
                handled += 1

    def handle(self, rec: RecordedEvent) -> None:
        """Take the next step of the transfer that ``rec`` belongs to."""
        if rec.event_type == "TransferRequested":
            self._debit(rec.aggregate_id)
        elif rec.event_type == "SourceDebited":
            self._credit(rec.aggregate_id)

    def _debit(self, transfer_id: str) -> None:
        transfer = self.app.get(Transfer, transfer_id)
        if transfer.status != REQUESTED:
            return
        try:
            self._account(transfer.source, "withdraw", transfer.amount, f"{transfer_id}:debit")
        except (DomainError, AggregateNotFoundError) as exc:
            self._fail(transfer_id, str(exc))
            return
        self._transfer(transfer_id, Transfer.record_debited)

    def _credit(self, transfer_id: str) -> None:
        transfer = self.app.get(Transfer, transfer_id)
        if transfer.status != DEBITED:
            return
        try:
            self._account(transfer.destination, "deposit", transfer.amount, f"{transfer_id}:credit")
        except (DomainError, AggregateNotFoundError) as exc:
            self._account(transfer.source, "deposit", transfer.amount, f"{transfer_id}:refund")
            self._fail(transfer_id, str(exc))
            return
        self._transfer(transfer_id, Transfer.complete)

    def _account(self, account_id: str, action: str, amount: Decimal, tx: str) -> None:
        def command(account: Account) -> None:
            getattr(account, action)(amount, tx)

        self.app.update(Account, account_id, command, attempts=self.attempts)

    def _fail(self, transfer_id: str, reason: str) -> None:
        self._transfer(transfer_id, lambda t: t.fail(reason))

    def _transfer(self, transfer_id: str, command: Callable[[Transfer], None]) -> None:
        self.app.update(Transfer, transfer_id, command, attempts=self.attempts)
