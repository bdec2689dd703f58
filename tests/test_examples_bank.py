"""The bank example: overdraft rule, transfers by process manager, conservation of money."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
from examples.bank.domain import Account, AccountClosedError, InsufficientFundsError
from examples.bank.transfers import COMPLETED, FAILED, Transfer, TransferProcessManager
from hypothesis import given, settings
from hypothesis import strategies as st

from kes.application import Application
from kes.domain import DomainError
from kes.envelope import NewEvent
from kes.errors import ConcurrencyError
from kes.store import ANY, AppendResult, MemoryEventStore
from kes.store.base import Expected


def open_accounts(app: Application, **balances: int) -> None:
    for name, balance in balances.items():
        account = Account(name, owner=name.upper())
        if balance:
            account.deposit(Decimal(balance))
        app.save(account)


def balance(app: Application, account_id: str) -> Decimal:
    return app.get(Account, account_id).balance


def test_withdrawal_beyond_the_overdraft_limit_is_refused_and_nothing_written() -> None:
    app = Application(MemoryEventStore())
    account = Account("a", "Ann", overdraft_limit=Decimal("50"))
    account.deposit(Decimal("100.25"))
    app.save(account)
    account.withdraw(Decimal("150.25"))
    with pytest.raises(InsufficientFundsError, match=r"cannot pay 0\.01"):
        account.withdraw(Decimal("0.01"))
    app.save(account)
    assert balance(app, "a") == Decimal("-50.00")
    assert app.store.stream_version("Account", "a") == 3
    with pytest.raises(DomainError, match="positive"):
        account.deposit(Decimal(0))


def test_try_withdraw_records_a_refusal_instead_of_raising() -> None:
    app = Application(MemoryEventStore())
    account = Account("a", "Ann", overdraft_limit=Decimal("10"))
    assert account.try_withdraw(Decimal("10")) is True
    assert account.try_withdraw(Decimal("0.01")) is False
    app.save(account)
    events = app.store.read_stream("Account", "a")
    assert [e.event_type for e in events] == [
        "AccountOpened",
        "MoneyWithdrawn",
        "WithdrawalRefused",
    ]
    assert events[-1].payload == {"amount": "0.01", "balance": "-10"}
    assert balance(app, "a") == Decimal("-10")


def test_repeated_transaction_id_is_applied_once() -> None:
    account = Account("a", "Ann")
    account.deposit(Decimal(10), "tx1")
    account.deposit(Decimal(10), "tx1")
    assert account.balance == 10 and account.version == 2


def test_transfer_completes_and_balances_are_conserved() -> None:
    app = Application(MemoryEventStore())
    open_accounts(app, a=100, b=5)
    app.save(Transfer.request("a", "b", Decimal("30.50"), transfer_id="t1"))
    manager = TransferProcessManager(app)
    assert manager.run_until_idle() == 3  # requested, debited, completed
    assert app.get(Transfer, "t1").status == COMPLETED
    assert (balance(app, "a"), balance(app, "b")) == (Decimal("69.50"), Decimal("35.50"))


def test_transfer_without_funds_fails_and_moves_nothing() -> None:
    app = Application(MemoryEventStore())
    open_accounts(app, a=10, b=0)
    app.save(Transfer.request("a", "b", Decimal(11), transfer_id="t1"))
    TransferProcessManager(app).run_until_idle()
    transfer = app.get(Transfer, "t1")
    assert transfer.status == FAILED and "cannot pay 11" in transfer.reason
    assert (balance(app, "a"), balance(app, "b")) == (Decimal(10), Decimal(0))


def test_transfer_to_a_closed_or_missing_account_refunds_the_source() -> None:
    app = Application(MemoryEventStore())
    open_accounts(app, a=10, b=0)
    app.update(Account, "b", Account.close)
    app.save(Transfer.request("a", "b", Decimal(4), transfer_id="t1"))
    app.save(Transfer.request("a", "nowhere", Decimal(4), transfer_id="t2"))
    TransferProcessManager(app).run_until_idle()
    for tid in ("t1", "t2"):
        assert app.get(Transfer, tid).status == FAILED
    assert "closed" in app.get(Transfer, "t1").reason
    assert balance(app, "a") == 10
    with pytest.raises(AccountClosedError):
        app.update(Account, "b", lambda acc: acc.deposit(Decimal(1)))


def test_process_manager_is_idempotent_when_events_are_redelivered() -> None:
    app = Application(MemoryEventStore())
    open_accounts(app, a=100, b=0)
    app.save(Transfer.request("a", "b", Decimal(30), transfer_id="t1"))
    manager = TransferProcessManager(app)
    manager.run_until_idle()
    versions = (
        app.store.stream_version("Account", "a"),
        app.store.stream_version("Transfer", "t1"),
    )
    again = TransferProcessManager(app)  # a restart that lost its checkpoint
    again.run_until_idle()
    for rec in app.store.read_all("Transfer"):
        manager.handle(rec)
    assert (balance(app, "a"), balance(app, "b")) == (Decimal(70), Decimal(30))
    assert versions == (
        app.store.stream_version("Account", "a"),
        app.store.stream_version("Transfer", "t1"),
    )


class BusyStore(MemoryEventStore):
    """Once armed, another writer deposits 1 into account ``a`` just before each of the
    next n appends to it; counts the appends that then fail with a conflict."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.conflicts = 0

    def append(
        self, aggregate_type: str, aggregate_id: str, events: Sequence[NewEvent], expected: Expected
    ) -> AppendResult:
        if (aggregate_type, aggregate_id) == ("Account", "a") and self.n > 0:
            self.n -= 1
            payload = {"amount": "1", "transactionId": None}
            super().append(
                "Account", "a", [NewEvent(event_type="MoneyDeposited", payload=payload)], ANY
            )
        try:
            return super().append(aggregate_type, aggregate_id, events, expected)
        except ConcurrencyError:
            self.conflicts += 1
            raise


def test_concurrent_writes_to_an_account_are_retried_by_the_process_manager() -> None:
    store = BusyStore()
    app = Application(store)
    open_accounts(app, a=50, b=0)
    app.save(Transfer.request("a", "b", Decimal(20), transfer_id="t1"))
    store.n = 2  # the process manager's debit of `a` meets two interfering deposits
    TransferProcessManager(app).run_until_idle()
    assert store.conflicts == 2, "the process manager never met a conflict"
    assert app.get(Transfer, "t1").status == COMPLETED
    assert (balance(app, "a"), balance(app, "b")) == (Decimal(32), Decimal(20))


@settings(max_examples=25, deadline=None)
@given(
    transfers=st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from("abc"), st.integers(1, 80)),
        max_size=15,
    )
)
def test_money_is_conserved_across_random_transfers(transfers: list[tuple[str, str, int]]) -> None:
    app = Application(MemoryEventStore())
    open_accounts(app, a=100, b=50, c=0)
    for i, (src, dst, amount) in enumerate(transfers):
        if src != dst:
            app.save(Transfer.request(src, dst, Decimal(amount), transfer_id=f"t{i}"))
    TransferProcessManager(app).run_until_idle()
    balances = [balance(app, x) for x in "abc"]
    assert sum(balances) == 150 and all(b >= 0 for b in balances)
