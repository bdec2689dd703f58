"""Aggregates and domain events: plain typed Python, no I/O, no Kafka.

An event is declared by decorating a method (or ``__init__``) with :func:`event`.
The signature becomes the event's payload class (a ``msgspec.Struct`` with camelCase
JSON names, so ``user_id`` is ``"userId"`` on the wire); calling the method records
a pending event and runs the body; replay runs the same body with the same values.

Recommended pattern: **check rules in a plain command method, then call the event
method**. Event bodies only change state, so replaying old events never trips a rule
added later. As a safety net, an exception raised inside an event body rolls the
aggregate back and records nothing::

    class User(Aggregate, id_field="user_id"):
        @event("UserCreated")
        def __init__(self, user_id: str, username: str, email: str) -> None:
            self.username = username
            self.email = email

        def change_email(self, email: str) -> None:      # command: guards
            if not self.active:
                raise UserDeactivatedError(...)
            self._email_changed(email)

        @event("EmailChanged")                            # event: state change
        def _email_changed(self, email: str) -> None:
            self.email = email

Payload values must be JSON values (str, int, float, bool, None, list, dict) or
``UUID``/``datetime``/``date``/``Decimal``, which are encoded as strings and decoded
back to their annotated type. The body always receives decoded values, so a command
and its replay see identical arguments.

Personal data is declared on the fields that hold it, ``email: Annotated[str,
personal()]`` (see :mod:`kes.personal`); the aggregate applies plaintext, the
application encrypts it on save and, once the subject is forgotten, replay applies the
field's placeholder instead.
"""

from __future__ import annotations

import copy
import inspect
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Self, TypeVar, get_type_hints, overload

import msgspec
from msgspec.structs import asdict

from kes.envelope import NewEvent, RecordedEvent
from kes.errors import InvalidInputError, KesError, SerializationError
from kes.personal import PersonalFields, personal_fields

__all__ = [
    "Aggregate",
    "DomainError",
    "DomainEvent",
    "UnknownEventError",
    "Upcaster",
    "VersionGapError",
    "event",
]

F = TypeVar("F", bound=Callable[..., Any])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class DomainError(KesError):
    """A command broke a business rule; nothing was recorded. Subclass it per rule."""

    code = "domain"


class UnknownEventError(KesError):
    """A recorded event has a type or schema version this aggregate class cannot apply."""

    code = "unknown_event"


class VersionGapError(KesError):
    """A stream's versions skip a number: something other than kes wrote to its topic."""

    code = "version_gap"


class DomainEvent(msgspec.Struct, kw_only=True, rename="camel"):
    """Base for explicit event classes, nested in the aggregate class that applies them.

    Subclasses define ``apply(self, aggregate)``; ``event_name`` (default: the class
    name) and ``schema_version`` (default 1) may be set as class attributes.
    Record one with ``aggregate.trigger(SomeEvent(...))``.
    """


@dataclass(frozen=True, slots=True)
class _EventSpec:
    """What replay needs to know about one event type; built once per class."""

    name: str
    schema_version: int
    payload_cls: type[msgspec.Struct]
    apply: Callable[[Aggregate, msgspec.Struct], None]
    signature: inspect.Signature | None = None
    personal: PersonalFields | None = None  # fields holding a data subject's personal data


_EVENT_ATTR = "__kes_event__"
_ATOMIC = frozenset({str, int, float, bool, type(None), bytes, uuid.UUID, datetime, date, Decimal})


@overload
def event(name: F, /) -> F: ...
@overload
def event(name: str | None = None, /, *, schema_version: int = 1) -> Callable[[F], F]: ...
def event(name: str | F | None = None, /, *, schema_version: int = 1) -> F | Callable[[F], F]:
    """Declare that calling the decorated method records the event ``name``.

    ``name`` defaults to the method name in CamelCase (``_email_changed`` ->
    ``EmailChanged``; ``__init__`` -> ``<Class>Created``). ``schema_version`` is the
    version of the payload shape; older events are brought up to it by ``upcasters``.
    """
    if callable(name):
        return _mark(name, None, schema_version)
    if schema_version < 1:
        raise ValueError(f"schema_version must be >= 1, got {schema_version}")
    event_name = name

    def decorate(fn: F) -> F:
        return _mark(fn, event_name, schema_version)

    return decorate


def _mark(fn: F, name: str | None, schema_version: int) -> F:
    is_init = fn.__name__ == "__init__"

    def wrapper(self: Aggregate, *args: Any, **kwargs: Any) -> None:
        if self._kes_applying:  # nested in another event's body, or replaying
            fn(self, *args, **kwargs)
            return
        spec: _EventSpec = getattr(wrapper, "__kes_spec__")  # noqa: B009
        if is_init:
            self._kes_id = type(self)._kes_init_id(spec, args, kwargs)
        self._kes_record(spec, spec.payload_cls(**_bind(spec, self, args, kwargs)))

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__module__ = fn.__module__
    setattr(wrapper, _EVENT_ATTR, (fn, name, schema_version))
    return wrapper  # type: ignore[return-value]


def _bind(spec: _EventSpec, self: Aggregate, args: Any, kwargs: Any) -> dict[str, Any]:
    assert spec.signature is not None
    try:
        bound = spec.signature.bind(self, *args, **kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"{type(self).__name__} event {spec.name}: {exc}") from exc
    bound.apply_defaults()
    values = dict(bound.arguments)
    values.pop(next(iter(spec.signature.parameters)))
    return values


def _camel(method_name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in method_name.strip("_").split("_"))


def _to_id(value: object, what: str) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise InvalidInputError(f"{what} must be a non-empty str or UUID, got {value!r}.")


class Aggregate:
    """Base class of event-sourced aggregates.

    Class options (class keywords or class attributes): ``aggregate_type`` (default:
    the class name; names the Kafka topic), ``id_field`` (the ``__init__`` parameter
    holding the id; default ``"id"`` if there is one, else a uuid4 is generated),
    ``snapshot_every``, ``snapshot_version`` and ``upcasters`` mapping
    ``(event_type, from_version)`` to a function turning that payload dict into the
    next version's.
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_kes_applying",
        "_kes_id",
        "_kes_pending",
        "_kes_subjects",
        "_kes_timestamp",
        "_kes_version",
    )

    aggregate_type: ClassVar[str] = "Aggregate"
    id_field: ClassVar[str | None] = None
    snapshot_every: ClassVar[int | None] = None
    snapshot_version: ClassVar[int] = 1
    upcasters: ClassVar[Mapping[tuple[str, int], Upcaster]] = {}
    _kes_events: ClassVar[dict[str, _EventSpec]] = {}
    _kes_by_class: ClassVar[dict[type[msgspec.Struct], _EventSpec]] = {}
    _kes_personal: ClassVar[dict[str, PersonalFields]] = {}

    _kes_applying: bool
    _kes_id: str
    _kes_pending: list[NewEvent]
    _kes_subjects: frozenset[str]
    _kes_timestamp: datetime | None
    _kes_version: int

    def __init_subclass__(
        cls, *, aggregate_type: str | None = None, id_field: str | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        if aggregate_type is not None:
            cls.aggregate_type = aggregate_type
        elif "aggregate_type" not in vars(cls):
            cls.aggregate_type = cls.__name__
        if id_field is not None:
            cls.id_field = id_field
        specs = dict(cls._kes_events)
        declared: set[str] = set()
        for attr, value in vars(cls).items():
            spec: _EventSpec | None = None
            if hasattr(value, _EVENT_ATTR):
                spec = _method_spec(cls, attr, value)
                value.__kes_spec__ = spec
            elif isinstance(value, type) and issubclass(value, DomainEvent):
                spec = _class_spec(cls, value)
            if spec is not None:
                if spec.name in declared:
                    raise TypeError(f"{cls.__name__}: event name {spec.name!r} is declared twice")
                declared.add(spec.name)
                specs[spec.name] = spec
        cls._kes_events = specs
        cls._kes_by_class = {s.payload_cls: s for s in specs.values()}
        cls._kes_personal = {n: s.personal for n, s in specs.items() if s.personal is not None}
        init = vars(cls).get("__init__")
        if cls.id_field is None and init is not None and hasattr(init, _EVENT_ATTR):
            params = inspect.signature(getattr(init, _EVENT_ATTR)[0]).parameters
            if "id" in params:
                cls.id_field = "id"

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = object.__new__(cls)
        self._kes_applying = False
        self._kes_id = ""
        self._kes_pending = []
        self._kes_subjects = _NO_SUBJECTS
        self._kes_timestamp = None
        self._kes_version = 0
        return self

    def __init__(self, id: str | uuid.UUID | None = None) -> None:
        """Give a new aggregate its id (or a uuid4); used when ``__init__`` is no event."""
        if id is not None:
            self._kes_id = _to_id(id, "id")
        elif not self._kes_id:
            self._kes_id = str(uuid.uuid4())

    @property
    def id(self) -> str:
        """The aggregate id (the Kafka record key)."""
        return self._kes_id

    @property
    def version(self) -> int:
        """How many events this object has applied, pending ones included."""
        return self._kes_version

    @property
    def data_subjects(self) -> frozenset[str]:
        """The data subjects whose personal fields this aggregate has applied."""
        return self._kes_subjects

    @property
    def pending_events(self) -> tuple[NewEvent, ...]:
        """Events recorded since the last save, oldest first."""
        return tuple(self._kes_pending)

    def collect_events(self) -> list[NewEvent]:
        """Return and forget the pending events (the caller now owns writing them)."""
        pending, self._kes_pending = self._kes_pending, []
        return pending

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}(id={self._kes_id!r}, version={self._kes_version}, {fields})"

    @classmethod
    def event_types(cls) -> dict[str, type[msgspec.Struct]]:
        """Event name -> payload class; ``msgspec.json.schema(cls)`` gives its JSON Schema."""
        return {name: spec.payload_cls for name, spec in cls._kes_events.items()}

    @classmethod
    def schema_versions(cls) -> dict[str, int]:
        """Event name -> the payload schema version this class writes and applies."""
        return {name: spec.schema_version for name, spec in cls._kes_events.items()}

    @classmethod
    def personal_fields(cls) -> dict[str, PersonalFields]:
        """Event name -> its personal fields, for the events that have any."""
        return dict(cls._kes_personal)

    def trigger(self, domain_event: DomainEvent) -> None:
        """Record an explicit event object and apply it (``domain_event.apply(self)``)."""
        spec = type(self)._kes_by_class.get(type(domain_event))
        if spec is None:
            raise TypeError(
                f"{type(domain_event).__name__} is not an event of {type(self).__name__}; "
                "nest its class inside the aggregate class."
            )
        if self._kes_applying:
            spec.apply(self, domain_event)
        else:
            self._kes_record(spec, domain_event)

    def _kes_record(self, spec: _EventSpec, payload: msgspec.Struct) -> None:
        """Encode, decode back (as replay will), apply with rollback, then record."""
        try:
            data: dict[str, Any] = msgspec.to_builtins(payload, str_keys=True)
        except TypeError as exc:
            raise SerializationError(
                f"{type(self).__name__} event {spec.name}: {exc}. Payload values must be JSON "
                "values, UUID, datetime, date or Decimal."
            ) from exc
        subjects = self._kes_subjects
        if spec.personal is not None:  # an invalid subject id is refused before any change
            found = {spec.personal.subject_of(g, self._kes_id, data) for g in spec.personal.groups}
            subjects = subjects | found
        try:
            typed = msgspec.convert(data, spec.payload_cls, str_keys=True)
        except msgspec.ValidationError as exc:
            raise InvalidInputError(
                f"{type(self).__name__} event {spec.name} has an invalid payload: {exc}."
            ) from exc
        backup = _clone_state(self.__dict__)
        self._kes_applying = True
        try:
            spec.apply(self, typed)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(backup)
            raise
        finally:
            self._kes_applying = False
        self._kes_version += 1
        self._kes_subjects = subjects
        self._kes_pending.append(
            NewEvent(event_type=spec.name, payload=data, schema_version=spec.schema_version)
        )

    @classmethod
    def _kes_init_id(cls, spec: _EventSpec, args: Any, kwargs: Any) -> str:
        if cls.id_field is None:
            return str(uuid.uuid4())
        assert spec.signature is not None
        try:
            bound = spec.signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise InvalidInputError(f"{cls.__name__}(): {exc}") from exc
        if cls.id_field not in bound.arguments:
            raise InvalidInputError(f"{cls.__name__}() needs {cls.id_field!r} (the id).")
        return _to_id(bound.arguments[cls.id_field], cls.id_field)

    @classmethod
    def replay(cls, events: Iterable[RecordedEvent], into: Self | None = None) -> Self | None:
        """Apply recorded events in order to ``into`` (or to a new aggregate).

        Returns None when there was nothing to build from. Runs the event bodies,
        upcasting payloads written with an older schema version first.
        """
        specs = cls._kes_events
        agg = into
        ts = None if agg is None else agg._kes_timestamp
        try:
            for rec in events:
                env = rec.envelope
                if agg is None:
                    agg = cls.__new__(cls)
                    agg._kes_id = env.aggregate_id
                    agg._kes_applying = True
                elif not agg._kes_applying:
                    agg._kes_applying = True
                if env.version != agg._kes_version + 1:
                    raise VersionGapError(
                        f"{cls.__name__} {env.aggregate_id!r}: event {env.event_type} has version "
                        f"{env.version}, expected {agg._kes_version + 1}; the stream has a gap."
                    )
                spec = specs.get(env.event_type)
                if spec is None:
                    raise UnknownEventError(
                        f"{cls.__name__} has no event {env.event_type!r} (at version "
                        f"{env.version} of {env.aggregate_id!r}); known: {sorted(specs)}."
                    )
                payload = env.payload
                if env.schema_version != spec.schema_version:
                    payload = cls._kes_upcast(spec, env.schema_version, payload)
                spec.apply(agg, msgspec.convert(payload, spec.payload_cls, str_keys=True))
                agg._kes_version = env.version
                if env.personal:
                    subjects = agg._kes_subjects
                    for sealed in env.personal:
                        if sealed.subject not in subjects:
                            subjects = subjects | {sealed.subject}
                    agg._kes_subjects = subjects
                if ts is None or env.timestamp > ts:
                    ts = env.timestamp
        finally:
            if agg is not None:
                agg._kes_applying = False
                agg._kes_timestamp = ts
        return agg

    @classmethod
    def upcast(
        cls, event_type: str, schema_version: int, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """Bring a payload written at ``schema_version`` up to this class's version of
        ``event_type``; returns (payload, version). Unknown event types pass unchanged."""
        spec = cls._kes_events.get(event_type)
        if spec is None or schema_version == spec.schema_version:
            return payload, schema_version
        return cls._kes_upcast(spec, schema_version, payload), spec.schema_version

    @classmethod
    def _kes_upcast(cls, spec: _EventSpec, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        if version > spec.schema_version:
            raise UnknownEventError(
                f"{cls.__name__} event {spec.name} has schema version {version}, newer than "
                f"this code's {spec.schema_version}; deploy the newer code to read it."
            )
        data = dict(payload)
        for v in range(version, spec.schema_version):
            upcaster = cls.upcasters.get((spec.name, v))
            if upcaster is None:
                raise UnknownEventError(
                    f"{cls.__name__} has no upcaster for {spec.name} v{v} -> v{v + 1}; add "
                    f"upcasters[({spec.name!r}, {v})]."
                )
            data = upcaster(data)
        return data

    @classmethod
    def _kes_restore(
        cls,
        aggregate_id: str,
        version: int,
        state: dict[str, Any],
        timestamp: datetime | None,
        subjects: Iterable[str] = (),
    ) -> Self:
        """Build an aggregate directly from state (snapshots, cache); runs no ``__init__``."""
        agg = cls.__new__(cls)
        agg._kes_id = aggregate_id
        agg._kes_version = version
        agg._kes_timestamp = timestamp
        if subjects:
            agg._kes_subjects = frozenset(subjects)
        agg.__dict__.update(state)
        return agg

    def _kes_clone(self) -> Self:
        """A deep copy without pending events, cheap for flat state."""
        return type(self)._kes_restore(
            self._kes_id,
            self._kes_version,
            _clone_state(self.__dict__),
            self._kes_timestamp,
            self._kes_subjects,
        )


_NO_SUBJECTS: frozenset[str] = frozenset()


def _clone_state(state: dict[str, Any]) -> dict[str, Any]:
    """Deep-copy state, sharing immutable atoms (the common case) without deepcopy."""
    atomic = _ATOMIC
    return {k: v if type(v) in atomic else copy.deepcopy(v) for k, v in state.items()}


def _method_spec(cls: type[Aggregate], attr: str, wrapper: Any) -> _EventSpec:
    fn, name, schema_version = getattr(wrapper, _EVENT_ATTR)
    if name is None:
        name = f"{cls.__name__}Created" if attr == "__init__" else _camel(attr)
    _check_name(cls, name)
    sig = inspect.signature(fn)
    try:
        hints = get_type_hints(fn, localns=dict(vars(cls)))
        extras = get_type_hints(fn, localns=dict(vars(cls)), include_extras=True)
    except NameError as exc:
        raise TypeError(f"{cls.__name__}.{attr}: cannot resolve an annotation: {exc}") from exc
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for i, p in enumerate(sig.parameters.values()):
        if i == 0:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{cls.__name__}.{attr}: events cannot take *args or **kwargs")
        hint = hints.get(p.name, Any)
        fields.append((p.name, hint) if p.default is p.empty else (p.name, hint, p.default))
    payload_cls = msgspec.defstruct(
        name,
        fields,
        kw_only=True,
        frozen=True,
        rename="camel",
        module=fn.__module__,
    )

    def apply(agg: Aggregate, payload: msgspec.Struct) -> None:
        fn(agg, **asdict(payload))

    declared = {p: extras[p] for p in list(sig.parameters)[1:] if p in extras}
    personal = personal_fields(cls.__name__, name, payload_cls, declared)
    return _EventSpec(name, schema_version, payload_cls, apply, sig, personal)


def _class_spec(cls: type[Aggregate], event_cls: type[DomainEvent]) -> _EventSpec:
    name = getattr(event_cls, "event_name", None) or event_cls.__name__
    _check_name(cls, name)
    apply_fn = getattr(event_cls, "apply", None)
    if apply_fn is None:
        raise TypeError(f"{cls.__name__}.{event_cls.__name__} needs an apply(self, aggregate)")
    version = int(getattr(event_cls, "schema_version", 1))

    def apply(agg: Aggregate, payload: msgspec.Struct) -> None:
        payload.apply(agg)  # type: ignore[attr-defined]

    try:
        extras = get_type_hints(event_cls, include_extras=True)
    except NameError as exc:
        raise TypeError(f"{cls.__name__}.{event_cls.__name__}: cannot resolve: {exc}") from exc
    personal = personal_fields(cls.__name__, name, event_cls, extras)
    return _EventSpec(name, version, event_cls, apply, None, personal)


def _check_name(cls: type[Aggregate], name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        raise TypeError(f"{cls.__name__}: event name {name!r} must be an identifier-like string")
