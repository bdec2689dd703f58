"""Positions in the event topics as one string: SSE event ids, ``Last-Event-ID`` and the
``from`` of paged reads.

Grammar (see docs/serve.md)::

    cursor = stream *( ";" stream )          User/0:154,3:88;Order/1:5
    stream = type "/" [ pos *( "," pos ) ]
    pos    = partition ":" next-offset

``next-offset`` is the offset of the next record to read in that partition: everything
below it has been delivered. A partition not named is read from its beginning, so an
SSE event's id alone resumes exactly after that event, whatever the other partitions did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kes.serve.problems import Problem

__all__ = ["Cursor", "parse_cursor"]

MAX_CURSOR_CHARS = 64 * 1024


class Cursor:
    """Next offset per partition, per aggregate type. Cheap to format after each event:
    only the changed type's part is rebuilt."""

    __slots__ = ("_parts", "_positions", "_text")

    def __init__(self, positions: Mapping[str, Mapping[int, int]] | None = None) -> None:
        self._positions: dict[str, dict[int, int]] = {
            t: dict(p) for t, p in (positions or {}).items()
        }
        self._parts: dict[str, str] = {t: _part(t, p) for t, p in self._positions.items()}
        self._text: str | None = None

    def of(self, aggregate_type: str) -> dict[int, int]:
        """The positions of one type (a copy)."""
        return dict(self._positions.get(aggregate_type, {}))

    @property
    def types(self) -> list[str]:
        return list(self._positions)

    def advance(self, aggregate_type: str, partition: int, offset: int) -> None:
        """Record that the record at ``offset`` has been delivered."""
        self._positions.setdefault(aggregate_type, {})[partition] = offset + 1
        self._parts[aggregate_type] = _part(aggregate_type, self._positions[aggregate_type])
        self._text = None

    def set(self, aggregate_type: str, positions: Mapping[int, int]) -> None:
        self._positions[aggregate_type] = dict(positions)
        self._parts[aggregate_type] = _part(aggregate_type, positions)
        self._text = None

    def next_offset(self, aggregate_type: str, partition: int) -> int:
        return self._positions.get(aggregate_type, {}).get(partition, 0)

    def __str__(self) -> str:
        if self._text is None:
            self._text = ";".join(self._parts[t] for t in sorted(self._parts))
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cursor) and other._positions == self._positions

    def __hash__(self) -> int:  # pragma: no cover - mutable; never hashed
        raise TypeError("Cursor is mutable")

    def __repr__(self) -> str:
        return f"Cursor({str(self)!r})"


def _part(aggregate_type: str, positions: Mapping[int, int]) -> str:
    return aggregate_type + "/" + ",".join(f"{p}:{o}" for p, o in sorted(positions.items()) if o)


def parse_cursor(text: str, types: Iterable[str], field: str) -> Cursor:
    """Parse ``text``; every type it names must be one of ``types``. Raises a 400 Problem
    naming ``field`` (``from`` or ``Last-Event-ID``) when it is malformed."""
    allowed = set(types)
    if len(text) > MAX_CURSOR_CHARS:
        raise _bad(field, text, f"it is {len(text)} characters long")
    positions: dict[str, dict[int, int]] = {}
    for stream in filter(None, text.strip().split(";")):
        name, slash, rest = stream.partition("/")
        if not slash:
            raise _bad(field, text, f"{stream!r} has no '/' after the aggregate type")
        if name not in allowed:
            raise _bad(
                field,
                text,
                f"it names aggregate type {name!r}, but this read covers "
                f"{', '.join(sorted(allowed)) or 'no type'}",
            )
        part: dict[int, int] = {}
        for pos in filter(None, rest.split(",")):
            p, colon, o = pos.partition(":")
            if not colon or not p.isdigit() or not o.isdigit():
                raise _bad(field, text, f"{pos!r} is not PARTITION:NEXT-OFFSET")
            part[int(p)] = int(o)
        positions[name] = part
    return Cursor(positions)


def _bad(field: str, text: str, why: str) -> Problem:
    shown = text if len(text) <= 200 else text[:200] + "..."
    return Problem(
        400,
        "Invalid position",
        f"{field} {shown!r} is not a kes position: {why}. A position reads like "
        "'User/0:154,3:88' (aggregate type, then partition:next-offset pairs); use an SSE "
        "event's id or a page's 'next' as it is.",
        code="invalid_input",
        field=field,
    )
