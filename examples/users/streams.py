"""Sign-ups per hour: a tumbling event-time window over ``UserCreated``.

Run it with ``kes stream run examples.users.streams:signups_per_hour``. Each closed
hour becomes an ``HourlySignupsCounted`` event of the ``SignupRate`` aggregate
``all`` (topic ``kes.events.SignupRate``), exactly once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from quixstreams.dataframe.windows import Count

from examples.users.domain import User
from kes.streams import Pipeline, Streams

HOUR = timedelta(hours=1)
#: sign-ups arriving up to this late still count in their hour; later ones are reported
GRACE = timedelta(minutes=10)


def count_signups(streams: Streams) -> None:
    signups = streams.events(User, "UserCreated")
    everyone = streams.key_by(signups, lambda _event: "all", name="signups-all")
    hourly = streams.tumbling_window(everyone, HOUR, GRACE, name="signups-hourly")
    closed = hourly.agg(signups=Count()).final()
    streams.emit(
        closed.apply(_row), "SignupRate", "HourlySignupsCounted", timestamp=lambda r: r["hourEnd"]
    )


def _row(window: dict[str, Any]) -> dict[str, Any]:
    return {"hourStart": window["start"], "hourEnd": window["end"], "signups": window["signups"]}


signups_per_hour = Pipeline("signups-per-hour", count_signups, aggregates=[User])
