"""The bank's application service: one command per method, one save per command. A
transfer saves both accounts together, so either both change or neither does."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from examples.eventsourcing_bank.domain import BankAccount


class AccountNotFoundError(LookupError):
    pass


class BankAccounts(Application[UUID]):
    def open_account(self, full_name: str, email_address: str) -> UUID:
        account = BankAccount(full_name=full_name, email_address=email_address)
        self.save(account)
        return account.id

    def deposit(self, account_id: UUID, amount: Decimal) -> None:
        account = self.get_account(account_id)
        account.credit(amount)
        self.save(account)

    def withdraw(self, account_id: UUID, amount: Decimal) -> None:
        account = self.get_account(account_id)
        account.debit(amount)
        self.save(account)

    def transfer(self, from_id: UUID, to_id: UUID, amount: Decimal) -> None:
        source = self.get_account(from_id)
        target = self.get_account(to_id)
        source.debit(amount)
        target.credit(amount)
        self.save(source, target)

    def set_overdraft_limit(self, account_id: UUID, limit: Decimal) -> None:
        account = self.get_account(account_id)
        account.set_overdraft_limit(limit)
        self.save(account)

    def close_account(self, account_id: UUID) -> None:
        account = self.get_account(account_id)
        account.close()
        self.save(account)

    def get_balance(self, account_id: UUID) -> Decimal:
        return self.get_account(account_id).balance

    def get_account(self, account_id: UUID) -> BankAccount:
        try:
            account: BankAccount = self.repository.get(account_id)
        except AggregateNotFoundError:
            raise AccountNotFoundError(f"no account {account_id}") from None
        return account
