"""Projections: read models fed by one consumer group each.

A projection names its group (``name``), the aggregates it reads, and its
``processing_guarantee``. Handlers are methods named after the event type they
handle: ``on_UserCreated``. Events of types with no handler are skipped (their
offsets still advance).

A handler receives a :class:`ProjectionEvent`: the recorded event with its payload
brought up to the current schema version by the upcasters of the aggregate classes
listed in ``aggregates``, exactly as ``Repository.get`` and pipelines do, and its
personal fields decrypted (or, once their subject is forgotten, their placeholders).
A read model erases its own copies of a subject's data in ``on_SubjectForgotten``: list
``DataSubject`` (from ``kes``) in ``aggregates`` to receive it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import msgspec

from kes.domain import Aggregate
from kes.envelope import Envelope, Position, RecordedEvent
from kes.kafka.config import KafkaConfig
from kes.projections._aio import is_async, resolve
from kes.projections.errors import ProjectionError
from kes.shredding.errors import KeyEncryptionKeyError

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

Guarantee = Literal["at_most_once", "at_least_once", "exactly_once"]
GUARANTEES: tuple[str, ...] = get_args(Guarantee)
HANDLER_PREFIX = "on_"

Handler = Callable[..., None]


class ProjectionEvent(RecordedEvent, frozen=True):
    """What a handler receives: the recorded event, its ``payload`` upcast to the
    current schema version of its event class (``schema_version`` says which).

    ``payload`` is the JSON object as written: top-level keys are the payload class's
    field names in camelCase (``amount_cents`` -> ``"amountCents"``), and a field whose
    value is a dict keeps that dict's keys as the command passed them. ``data`` is the
    same payload as the event class's payload struct, with the Python field names
    (``event.data.amount_cents``); it is built on each access.
    """

    payload_type: Any = None  # the payload class, when the projection knows the aggregate

    @property
    def data(self) -> Any:
        """The payload as an instance of its event class's payload struct."""
        if self.payload_type is None:
            raise ProjectionError(
                f"event {self.event_type} of {self.aggregate_type} has no payload class: list "
                f"the aggregate class in the projection's `aggregates` (e.g. `aggregates = "
                f"({self.aggregate_type},)`) to get typed payloads, or read `event.payload`."
            )
        return msgspec.convert(self.payload, self.payload_type, str_keys=True)


class Projection:
    """A read model with side effects of its own: ``on_<EventType>(self, event)``, a plain
    function or an ``async def`` (run to completion before the next event, with the same
    guarantee).

    ``at_least_once`` (default) handles a batch, then commits its offsets to Kafka;
    ``at_most_once`` commits first. For ``exactly_once`` use :class:`SqlProjection`
    (offsets in the read model's own database) or :class:`KafkaProcessor`.

    ``aggregates`` are the aggregate classes read: their types' topics are consumed and
    their upcasters bring old events to the current schema version before a handler
    sees them. ``aggregate_types`` names further types read as written (no class, no
    upcasting); it defaults to the types of ``aggregates``. ``key_ring`` decrypts
    personal fields (the runner sets it).
    """

    name: ClassVar[str] = ""
    aggregates: ClassVar[tuple[type[Aggregate], ...]] = ()
    aggregate_types: ClassVar[tuple[str, ...]] = ()
    processing_guarantee: ClassVar[Guarantee] = "at_least_once"
    #: attempts of a failing handler before the record is parked in the dead-letter topic
    max_attempts: ClassVar[int] = 3
    #: seconds before the first retry; doubled on each further one
    retry_backoff_s: ClassVar[float] = 0.05
    key_ring: KeyRing | None = None
    _handler_names: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        classes = own.get("aggregates")
        if isinstance(classes, tuple | list) and all(_is_aggregate(a) for a in classes):
            named = own.get("aggregate_types", ())
            if not isinstance(named, str):  # else check_definition says what is wrong
                read = [*named, *(a.aggregate_type for a in classes)]
                cls.aggregate_types = tuple(dict.fromkeys(read))
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
        self._classes: dict[str, type[Aggregate]] = {a.aggregate_type: a for a in self.aggregates}
        self._payload_types: dict[tuple[str, str], type[msgspec.Struct]] = {
            (a.aggregate_type, event_type): payload
            for a in self.aggregates
            for event_type, payload in a.event_types().items()
        }

    def event_for(self, envelope: Envelope, position: Position) -> ProjectionEvent:
        """The event a handler receives for ``envelope``: upcast by its aggregate class.

        Raises UnknownEventError when it cannot be upcast (no upcaster, or a schema
        version newer than the class): handling it again cannot succeed; and a
        PersonalDataError when its personal fields cannot be decrypted.
        """
        if envelope.personal:  # decrypted first: upcasters see the payload as written
            if self.key_ring is None:
                raise KeyEncryptionKeyError(
                    f"{type(self).__name__}: event {envelope.event_id} ({envelope.event_type}) "
                    "has personal fields and the projection has no key ring; run it with "
                    "ProjectionRunner (which makes one from KES_KEK_FILE) or set key_ring."
                )
            envelope = self.key_ring.reveal(envelope)
        cls = self._classes.get(envelope.aggregate_type)
        if cls is not None:
            payload, version = cls.upcast(
                envelope.event_type, envelope.schema_version, envelope.payload
            )
            if version != envelope.schema_version:
                envelope = msgspec.structs.replace(
                    envelope, payload=payload, schema_version=version
                )
        payload_type = self._payload_types.get((envelope.aggregate_type, envelope.event_type))
        return ProjectionEvent(envelope, position, payload_type)

    @property
    def is_async(self) -> bool:
        """Whether any handler (or ``setup``/``reset``) is an ``async def``."""
        return any(is_async(h) for h in self.handlers.values()) or any(
            is_async(getattr(self, name, None)) for name in ("setup", "reset")
        )

    @property
    def reads_personal_data(self) -> bool:
        """Whether an aggregate class it reads declares personal fields."""
        return any(a.personal_fields() for a in self.aggregates)

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
    if not isinstance(cls.aggregates, tuple | list) or not all(
        _is_aggregate(a) for a in cls.aggregates
    ):
        raise ProjectionError(
            f"{where}.aggregates is {cls.aggregates!r}; set a tuple of Aggregate classes, "
            "e.g. `aggregates = (User,)`."
        )
    if not cls.aggregate_types or isinstance(cls.aggregate_types, str):
        raise ProjectionError(
            f"{where} reads nothing: aggregates is {cls.aggregates!r} and aggregate_types "
            f"{cls.aggregate_types!r}. Set the aggregate classes it reads, e.g. "
            '`aggregates = (User,)` (or type names: `aggregate_types = ("User",)`).'
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


def _is_aggregate(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Aggregate)


def dispatch(projection: Projection, event: RecordedEvent, *args: Any) -> None:
    """Hand ``event`` to the projection's handler of its type, if it has one."""
    handler = projection.handlers.get(event.event_type)
    if handler is not None:
        resolve(handler(event, *args))  # an async def handler runs to completion here
