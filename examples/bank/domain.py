"""Bank accounts: money moves only by events, and the overdraft limit is a rule.

Amounts are ``Decimal`` (strings on the wire, e.g. ``"10.50"``). Deposits and
withdrawals may carry a ``transaction_id``; repeating one is a no-op, which makes
the commands safe to re-run when a process manager sees an event twice.
"""

from __future__ import annotations

from decimal import Decimal

from kes import Aggregate, DomainError, event


class InsufficientFundsError(DomainError):
    """A withdrawal would take the balance below the overdraft limit."""


class AccountClosedError(DomainError):
    """A command was sent to a closed account."""


class Account(Aggregate, id_field="account_id"):
    """A bank account with a balance that may go down to ``-overdraft_limit``."""

    balance: Decimal
    overdraft_limit: Decimal
    transactions: set[str]

    @event("AccountOpened")
    def __init__(self, account_id: str, owner: str, overdraft_limit: Decimal = Decimal(0)) -> None:
        self.owner = owner
        self.overdraft_limit = overdraft_limit
        self.balance = Decimal(0)
        self.open = True
        self.transactions = set()

    def deposit(self, amount: Decimal, transaction_id: str | None = None) -> None:
        """Add ``amount`` (> 0) to the balance."""
        if self._seen(transaction_id):
            return
        self._check(amount)
        self._deposited(amount, transaction_id)

    def withdraw(self, amount: Decimal, transaction_id: str | None = None) -> None:
        """Take ``amount`` (> 0) from the balance, within the overdraft limit."""
        if self._seen(transaction_id):
            return
        self._check(amount)
        if self.balance - amount < -self.overdraft_limit:
            raise InsufficientFundsError(
                f"account {self.id!r} has {self.balance} (overdraft limit "
                f"{self.overdraft_limit}); it cannot pay {amount}."
            )
        self._withdrawn(amount, transaction_id)

    def try_withdraw(self, amount: Decimal, transaction_id: str | None = None) -> bool:
        """Like :meth:`withdraw`, but a withdrawal beyond the overdraft limit is recorded
        (``WithdrawalRefused``, which risk monitoring counts) instead of raised."""
        if self._seen(transaction_id):
            return True
        self._check(amount)
        if self.balance - amount < -self.overdraft_limit:
            self._refused(amount, self.balance)
            return False
        self._withdrawn(amount, transaction_id)
        return True

    def close(self) -> None:
        """Close the account; it must be empty."""
        if self.open:
            if self.balance != 0:
                raise DomainError(f"account {self.id!r} holds {self.balance}; empty it first.")
            self._closed()

    def _seen(self, transaction_id: str | None) -> bool:
        return transaction_id is not None and transaction_id in self.transactions

    def _check(self, amount: Decimal) -> None:
        if not self.open:
            raise AccountClosedError(f"account {self.id!r} is closed.")
        if amount <= 0:
            raise DomainError(f"amounts must be positive, got {amount}.")

    @event("MoneyDeposited")
    def _deposited(self, amount: Decimal, transaction_id: str | None) -> None:
        self.balance += amount
        if transaction_id is not None:
            self.transactions.add(transaction_id)

    @event("MoneyWithdrawn")
    def _withdrawn(self, amount: Decimal, transaction_id: str | None) -> None:
        self.balance -= amount
        if transaction_id is not None:
            self.transactions.add(transaction_id)

    @event("WithdrawalRefused")
    def _refused(self, amount: Decimal, balance: Decimal) -> None:
        pass

    @event("AccountClosed")
    def _closed(self) -> None:
        self.open = False
