"""Errors of read models (projections); all are :class:`kes.errors.KesError`."""

from __future__ import annotations

from kes.errors import KesError


class ProjectionError(KesError):
    """A projection is defined or configured wrongly, or cannot run."""


class CheckpointConflictError(ProjectionError):
    """Another process advanced a partition's stored offset first (it owns it now)."""
