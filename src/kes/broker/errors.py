"""The error of the local development broker."""

from __future__ import annotations

from kes.errors import KesError


class BrokerError(KesError):
    """A local Apache Kafka node could not be fetched, started or stopped."""

    code = "broker"
