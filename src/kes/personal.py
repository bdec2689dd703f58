"""Personal data in the domain: which event fields belong to which data subject.

A field is declared personal by annotating the event method's parameter (or a
``DomainEvent`` field) with :func:`personal`::

    class User(Aggregate, id_field="user_id"):
        @event("UserCreated")
        def __init__(
            self, user_id: str, name: Annotated[str, personal()], email: Annotated[str, personal()]
        ) -> None: ...

``personal()`` makes the aggregate itself the data subject (its id is the subject id);
``personal("customer_id")`` names the event field that holds the subject's id. The
application encrypts personal fields with the subject's own data key before an event
leaves the process, and once the subject is forgotten they read as their
``placeholder``: ``FORGOTTEN`` for a ``str``, ``None`` for an optional field, and for any
other type the value given. Everything else about the event stays as it was.

This module only declares; ``kes.shredding`` encrypts and decrypts.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

__all__ = ["FORGOTTEN", "Personal", "PersonalFields", "personal"]

#: What a personal ``str`` field reads as once its subject is forgotten (the default
#: placeholder; pass ``placeholder=`` to ``personal`` for another).
FORGOTTEN = "[forgotten]"
MAX_SUBJECT_LENGTH = 1024  # a subject id is also the id of its DataSubject stream


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


@dataclass(frozen=True)
class Personal:
    """The marker :func:`personal` returns; put it in ``Annotated[type, ...]``."""

    subject: str | None = None  # the field holding the subject id; None: the aggregate id
    placeholder: Any = _UNSET


def personal(subject: str | None = None, *, placeholder: Any = _UNSET) -> Personal:
    """Declare a field personal data of a data subject: ``Annotated[str, personal()]``.

    ``subject`` is the name of the event field (a parameter of the same event) whose value
    is the subject's id; by default the aggregate's own id. ``placeholder`` is what the
    field reads as once the subject is forgotten; it must be a valid value of the field's
    type (default: ``FORGOTTEN`` for ``str``, ``None`` for an optional field).
    """
    return Personal(subject, placeholder)


@dataclass(frozen=True)
class FieldGroup:
    """The personal fields of one event that belong to one subject."""

    subject_field: str | None  # JSON name of the field holding the subject id; None: aggregate
    placeholders: dict[str, Any]  # JSON field name -> placeholder (JSON value); never changed


@dataclass(frozen=True)
class PersonalFields:
    """An event type's personal fields, grouped by the field naming their subject."""

    event_name: str
    groups: tuple[FieldGroup, ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(f for g in self.groups for f in g.placeholders)

    def subject_of(self, group: FieldGroup, aggregate_id: str, data: Mapping[str, Any]) -> str:
        """The subject id of ``group`` in the payload ``data`` (JSON names)."""
        if group.subject_field is None:
            return aggregate_id
        value = data.get(group.subject_field)
        if (
            not isinstance(value, str)
            or not value
            or value.strip() != value
            or len(value) > MAX_SUBJECT_LENGTH
        ):
            from kes.errors import InvalidInputError

            fields = ", ".join(sorted(group.placeholders))
            raise InvalidInputError(
                f"event {self.event_name}: personal field(s) {fields} belong to the subject "
                f"named by {group.subject_field!r}, which is {value!r}; give an id of 1 to "
                f"{MAX_SUBJECT_LENGTH} characters without surrounding spaces."
            )
        return value


def personal_fields(
    owner: str, event_name: str, payload_cls: type[msgspec.Struct], hints: Mapping[str, Any]
) -> PersonalFields | None:
    """The personal fields declared in ``hints`` (annotations with extras, by Python name)
    of ``payload_cls``; None when there are none. Raises TypeError for a declaration that
    cannot work (an unknown subject field, a placeholder of the wrong type)."""
    json_names = {f.name: f.encode_name for f in msgspec.structs.fields(payload_cls)}
    groups: dict[str | None, dict[str, Any]] = {}
    where = f"{owner} event {event_name}"
    for name, hint in hints.items():
        marker = _marker(hint)
        if marker is None or name not in json_names:
            continue
        subject = marker.subject
        if subject is not None:
            if subject not in json_names:
                raise TypeError(
                    f"{where}: field {name!r} names its subject by {subject!r}, which is not a "
                    f"field of the event; choose one of {sorted(json_names)} or leave it out "
                    "(the aggregate's id is then the subject)."
                )
            if _marker(hints.get(subject)) is not None:
                raise TypeError(f"{where}: the subject field {subject!r} cannot be personal.")
        base = _strip(hint)
        placeholder = marker.placeholder
        if placeholder is _UNSET:
            placeholder = _default_placeholder(base)
            if placeholder is _UNSET:
                raise TypeError(
                    f"{where}: personal field {name!r} of type {base!r} needs a placeholder "
                    f"(what it reads as once forgotten): personal(placeholder=...)."
                )
        try:
            msgspec.convert(msgspec.to_builtins(placeholder), base, str_keys=True)
        except (msgspec.ValidationError, TypeError) as exc:
            raise TypeError(
                f"{where}: the placeholder {placeholder!r} of personal field {name!r} is not a "
                f"valid {base!r}: {exc}"
            ) from None
        key = None if subject is None else json_names[subject]
        groups.setdefault(key, {})[json_names[name]] = msgspec.to_builtins(placeholder)
    if not groups:
        return None
    return PersonalFields(
        event_name, tuple(FieldGroup(k, dict(v)) for k, v in sorted(groups.items(), key=_order))
    )


def _order(item: tuple[str | None, dict[str, Any]]) -> str:
    return item[0] or ""


def _marker(hint: Any) -> Personal | None:
    if get_origin(hint) is Annotated:
        for extra in hint.__metadata__:
            if isinstance(extra, Personal):
                return extra
    return None


def _strip(hint: Any) -> Any:
    """The type without ``Personal`` markers (other ``Annotated`` extras are kept)."""
    if get_origin(hint) is not Annotated:
        return hint
    base, *extras = get_args(hint)
    kept = [e for e in extras if not isinstance(e, Personal)]
    return Annotated[(base, *kept)] if kept else base


def _default_placeholder(base: Any) -> Any:
    if get_origin(base) is Annotated:
        base = get_args(base)[0]
    if base is str:
        return FORGOTTEN
    if get_origin(base) in (Union, types.UnionType) and type(None) in get_args(base):
        return None
    if base is typing.Any:
        return None
    return _UNSET
