"""Stream processing on the bank: risk monitoring and enriched deposits.

* ``monitoring`` - per account, activity per hour (tumbling window) and an
  ``OverdraftAlertRaised`` event whenever an account has had three or more refused
  withdrawals within 24 hours (sliding window);
* ``enriched_deposits`` - every deposit with the holder's name as of the deposit
  (a join with the current state of the ``User`` aggregates of the users example;
  an account's ``owner`` is the user id of its holder) and the holder's running total.

Run with ``kes stream run examples.bank.streams:monitoring`` (or ``:enriched_deposits``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from quixstreams.dataframe.windows import Count, Max
from quixstreams.state.base import State

from examples.bank.domain import Account
from examples.users.domain import User
from kes.streams import Pipeline, StreamEvent, Streams

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
GRACE = timedelta(minutes=5)
ALERT_AT = 3


def monitor(streams: Streams) -> None:
    # Activity per account and hour: closed windows only, each exactly once.
    activity = streams.events(Account)
    hourly = streams.tumbling_window(activity, HOUR, GRACE, name="activity-hourly")
    streams.emit(
        hourly.agg(events=Count()).final().apply(_activity_row),
        "AccountActivity",
        "HourlyActivityCounted",
        timestamp=lambda r: r["hourEnd"],
    )
    # Refused withdrawals in the 24 h ending at each refusal (the window whose end is
    # the refusal's own time); three or more raise an alert.
    refusals = streams.events(Account, "WithdrawalRefused")
    recent = streams.sliding_window(refusals, DAY, GRACE, name="refusals-24h")
    counted = recent.agg(refusals=Count(), last=Max("timestampMs")).current()
    alerts = counted.filter(lambda w: w["end"] == w["last"] and w["refusals"] >= ALERT_AT)
    streams.emit(
        alerts.apply(_alert), "AccountRisk", "OverdraftAlertRaised", timestamp=lambda a: a["at"]
    )


def _activity_row(window: dict[str, Any]) -> dict[str, Any]:
    return {"hourStart": window["start"], "hourEnd": window["end"], "events": window["events"]}


def _alert(window: dict[str, Any]) -> dict[str, Any]:
    return {"refusals": window["refusals"], "since": window["start"], "at": window["end"]}


def enrich_deposits(streams: Streams) -> None:
    accounts = streams.events(Account, "AccountOpened", "MoneyDeposited")
    deposits = accounts.apply(_with_owner, stateful=True).filter(lambda d: d is not None)
    holders = streams.table(User)
    enriched = streams.enrich(
        deposits, holders, by=lambda d: d["owner"], into="holder", name="deposits-by-owner"
    )
    # Keyed by holder now: a running total of what each holder received.
    totals = streams.reduce(
        enriched.apply(_deposit_row), _add_to_total, _first_total, name="holder-totals"
    )
    streams.emit(totals, "HolderActivity", "DepositReceived")


def _with_owner(event: StreamEvent, state: State[str, Any]) -> dict[str, Any] | None:
    """Remember each account's owner (from AccountOpened); hand on deposits with it."""
    if event["eventType"] == "AccountOpened":
        state.set("owner", event["payload"]["owner"])
        return None
    return {**event, "owner": state.get("owner")}


def _deposit_row(deposit: dict[str, Any]) -> dict[str, Any]:
    holder = deposit["holder"] or {}
    return {
        "accountId": deposit["aggregateId"],
        "amount": deposit["payload"]["amount"],
        "depositedAt": deposit["timestamp"],
        "holderId": deposit["owner"],
        "holderName": holder.get("username"),
    }


def _first_total(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "holderTotal": row["amount"]}


def _add_to_total(previous: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "holderTotal": str(Decimal(previous["holderTotal"]) + Decimal(row["amount"]))}


monitoring = Pipeline("bank-monitoring", monitor, aggregates=[Account])
enriched_deposits = Pipeline("bank-enriched-deposits", enrich_deposits, aggregates=[Account, User])
