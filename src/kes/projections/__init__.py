"""Read models: projections fed by consumer groups under a chosen processing guarantee."""

from kes.projections.checkpoints import (
    AsyncPostgresCheckpointStore,
    AsyncTx,
    CheckpointStore,
    PostgresCheckpointStore,
    SqliteCheckpointStore,
    Tx,
    open_checkpoints,
)
from kes.projections.derived import EventTypeTopics, derived_topic, event_type_topics
from kes.projections.dlq import Parked, dlq_topic, read_parked
from kes.projections.errors import CheckpointConflictError, ProjectionError
from kes.projections.processor import Output
from kes.projections.projection import (
    Guarantee,
    KafkaProcessor,
    Projection,
    ProjectionEvent,
    SqlProjection,
)
from kes.projections.runner import ProjectionRunner, RunStats

__all__ = [
    "AsyncPostgresCheckpointStore",
    "AsyncTx",
    "CheckpointConflictError",
    "CheckpointStore",
    "EventTypeTopics",
    "Guarantee",
    "KafkaProcessor",
    "Output",
    "Parked",
    "PostgresCheckpointStore",
    "Projection",
    "ProjectionError",
    "ProjectionEvent",
    "ProjectionRunner",
    "RunStats",
    "SqlProjection",
    "SqliteCheckpointStore",
    "Tx",
    "derived_topic",
    "dlq_topic",
    "event_type_topics",
    "open_checkpoints",
    "read_parked",
]
