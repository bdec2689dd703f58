"""Projections: read models fed by one consumer group each.

A projection names its group (``name``), the aggregate types it reads, and its
``processing_guarantee``. Handlers are methods named after the event type they
handle: ``on_UserCreated``. Events of types with no handler are skipped (their
offsets still advance).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar, Literal, get_args

from kes.envelope import RecordedEvent
from kes.kafka.config import KafkaConfig
from kes.projections._aio import is_async, resolve
from kes.projections.errors import ProjectionError

Guarantee = Literal["at_most_once", "at_least_once", "exactly_once"]
GUARANTEES: tuple[str, ...] = get_args(Guarantee)
HANDLER_PREFIX = "on_"

Handler = Callable[..., None]


class Projection:
    """A read model with side effects of its own: ``on_<EventType>(self, event)``, a plain
    function or an ``async def`` (run to completion before the next event, with the same
    guarantee).

    ``at_least_once`` (default) handles a batch, then commits its offsets to Kafka;
    ``at_most_once`` commits first. For ``exactly_once`` use :class:`SqlProjection`
    (offsets in the read model's own database) or :class:`KafkaProcessor`.
    """

    name: ClassVar[str] = ""
    aggregate_types: ClassVar[tuple[str, ...]] = ()
    processing_guarantee: ClassVar[Guarantee] = "at_least_once"
    #: attempts of a failing handler before the record is parked in the dead-letter topic
    max_attempts: ClassVar[int] = 3
    #: seconds before the first retry; doubled on each further one
    retry_backoff_s: ClassVar[float] = 0.05
    _handler_names: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handler_names = {
            attr[len(HANDLER_PREFIX) :]: attr
            for attr in dir(cls)
            if attr.startswith(HANDLER_PREFIX) and callable(getattr(cls, attr))
        }

    def __init__(self) -> None:
        check_definition(type(self))
        self.handlers: dict[str, Handler] = {
            event_type: getattr(self, attr) for event_type, attr in self._handler_names.items()
        }

    @property
    def is_async(self) -> bool:
        """Whether any handler (or ``setup``/``reset``) is an ``async def``."""
        return any(is_async(h) for h in self.handlers.values()) or any(
            is_async(getattr(self, name, None)) for name in ("setup", "reset")
        )

    @property
    def event_types(self) -> list[str]:
        """The event types this projection handles."""
        return sorted(self.handlers)

    def describe(self) -> str:
        return (
            f"{type(self).__name__} (group {self.name!r}, {self.processing_guarantee}, "
            f"reads {', '.join(self.aggregate_types)})"
        )


class SqlProjection(Projection):
    """A read model in SQL, exactly once: each batch's changes and its consumed offsets
    (table ``kes_offsets``) commit in one database transaction.

    Handlers are ``on_<EventType>(self, event, tx)``; ``tx.execute(sql, params)`` takes
    ``?`` placeholders on SQLite and PostgreSQL alike. On PostgreSQL, handlers (and
    ``setup``/``reset``) may be ``async def`` instead: they get an async transaction
    (psycopg's asyncio driver) and ``await tx.execute(...)``, exactly once all the same.
    ``setup(tx)`` creates the tables (idempotently); ``reset(tx)`` empties them before a
    replay.
    """

    processing_guarantee: ClassVar[Guarantee] = "exactly_once"
    #: where the read model lives: ``sqlite:///path.db`` or ``postgresql://...``; the
    #: runner's ``database=`` argument or ``KES_PROJECTION_DB`` override it
    database: ClassVar[str] = "sqlite:///.kes/projections.db"

    def setup(self, tx: Any) -> Awaitable[None] | None:
        """Create the read model's tables if they do not exist."""
        return None

    def reset(self, tx: Any) -> Awaitable[None] | None:
        """Remove every row of the read model (before a replay)."""
        raise ProjectionError(
            f"{type(self).__name__} cannot be replayed: it does not define reset(tx). "
            "Define reset(tx) to delete its rows (kes resets its offsets itself)."
        )


class KafkaProcessor(Projection):
    """Kafka to Kafka, exactly once: what ``process`` returns for a batch is produced
    in one Kafka transaction together with the batch's consumed offsets
    (``send_offsets_to_transaction``), so outputs and progress commit or vanish together."""

    processing_guarantee: ClassVar[Guarantee] = "exactly_once"

    def open(self, config: KafkaConfig) -> None:
        """Called once before the first record (create output topics here)."""

    def process(self, record: Any) -> Iterable[Any]:
        """Records (:class:`kes.projections.processor.Output`) to produce for one input."""
        raise NotImplementedError


def check_definition(cls: type[Projection]) -> None:
    """Refuse a projection class that cannot run, saying what to fix."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not cls.name:
        raise ProjectionError(
            f'{where} has no name; set `name = "..."` (it is the consumer group id).'
        )
    if not cls.aggregate_types or isinstance(cls.aggregate_types, str):
        raise ProjectionError(
            f"{where}.aggregate_types is {cls.aggregate_types!r}; set a tuple of aggregate "
            'types to read, e.g. `aggregate_types = ("User",)`.'
        )
    g = cls.processing_guarantee
    if g not in GUARANTEES:
        raise ProjectionError(
            f"{where}.processing_guarantee is {g!r}; choose one of {', '.join(GUARANTEES)}."
        )
    if g == "exactly_once" and not issubclass(cls, SqlProjection | KafkaProcessor):
        raise ProjectionError(
            f"{where} asks for exactly_once but its side effects are its own: kes cannot "
            "commit them with the offsets. Subclass SqlProjection (read model in SQL) or "
            "KafkaProcessor (output to Kafka), or choose at_least_once with idempotent handlers."
        )
    if issubclass(cls, SqlProjection | KafkaProcessor) and g != "exactly_once":
        kind = "SqlProjection" if issubclass(cls, SqlProjection) else "KafkaProcessor"
        raise ProjectionError(
            f"{where} is a {kind}"
            f" with processing_guarantee={g!r}; these exist to give exactly_once. Subclass "
            "Projection for at_most_once / at_least_once."
        )
    if cls.max_attempts < 1:
        raise ProjectionError(f"{where}.max_attempts must be >= 1, got {cls.max_attempts}.")


def dispatch(projection: Projection, event: RecordedEvent, *args: Any) -> None:
    handler = projection.handlers.get(event.event_type)
    if handler is not None:
        resolve(handler(event, *args))  # an async def handler runs to completion here
