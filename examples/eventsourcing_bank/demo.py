"""Run the bank on whatever persistence the environment names, e.g. on Kafka::

    PERSISTENCE_MODULE=kes.integrations.eventsourcing KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
        python -m examples.eventsourcing_bank.demo

Without ``PERSISTENCE_MODULE`` it runs in memory. The output is the same either way.
"""

from __future__ import annotations

from decimal import Decimal

from examples.eventsourcing_bank.application import BankAccounts
from examples.eventsourcing_bank.domain import InsufficientFundsError


def main() -> None:
    with BankAccounts() as bank:
        alice = bank.open_account("Alice", "alice@example.com")
        bob = bank.open_account("Bob", "bob@example.com")
        bank.deposit(alice, Decimal("100.00"))
        bank.transfer(alice, bob, Decimal("30.00"))
        bank.set_overdraft_limit(bob, Decimal("50.00"))
        bank.withdraw(bob, Decimal("70.00"))
        try:
            bank.transfer(alice, bob, Decimal("500.00"))
        except InsufficientFundsError:
            print("refused: Alice cannot transfer 500.00")
        print(f"Alice {bank.get_balance(alice)}, Bob {bank.get_balance(bob)}")
        section = bank.notification_log["1,20"]
        for item in section.items:
            who = "Alice" if item.originator_id == alice else "Bob"
            print(f"{item.id}: {who} v{item.originator_version} {item.topic.rsplit('.', 1)[-1]}")


if __name__ == "__main__":
    main()
