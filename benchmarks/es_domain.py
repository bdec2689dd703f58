"""The users domain written for the ``eventsourcing`` package (as examples/users is for kes).

Module level, because eventsourcing registers each class by its import path once.
"""

from __future__ import annotations

import uuid

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class ESUser(Aggregate):
    @event("UserCreated")
    def __init__(self, username: str, email: str) -> None:
        self.username = username
        self.email = email
        self.active = True

    @event("UserRenamed")
    def rename(self, username: str) -> None:
        self.username = username


class Users(Application[uuid.UUID]):
    """An eventsourcing application holding ESUser aggregates."""
