"""A bank account as an ``eventsourcing`` aggregate: each decorated method is a command
whose body is also what replaying its event runs."""

from __future__ import annotations

from decimal import Decimal

from eventsourcing.domain import Aggregate, event


class TransactionError(Exception):
    """A command the account refuses; nothing is recorded."""


class AccountClosedError(TransactionError):
    pass


class InsufficientFundsError(TransactionError):
    pass


class BankAccount(Aggregate):
    @event("Opened")
    def __init__(self, full_name: str, email_address: str) -> None:
        self.full_name = full_name
        self.email_address = email_address
        self.balance = Decimal("0.00")
        self.overdraft_limit = Decimal("0.00")
        self.is_closed = False

    @event("Credited")
    def credit(self, amount: Decimal) -> None:
        self._check_open()
        self.balance += amount

    @event("Debited")
    def debit(self, amount: Decimal) -> None:
        self._check_open()
        if self.balance - amount < -self.overdraft_limit:
            raise InsufficientFundsError(
                f"account {self.id} holds {self.balance} (overdraft {self.overdraft_limit}); "
                f"cannot debit {amount}"
            )
        self.balance -= amount

    @event("OverdraftLimitSet")
    def set_overdraft_limit(self, overdraft_limit: Decimal) -> None:
        if overdraft_limit < 0:
            raise ValueError(f"an overdraft limit cannot be negative, got {overdraft_limit}")
        self._check_open()
        self.overdraft_limit = overdraft_limit

    @event("Closed")
    def close(self) -> None:
        self.is_closed = True

    def _check_open(self) -> None:
        if self.is_closed:
            raise AccountClosedError(f"account {self.id} is closed")
