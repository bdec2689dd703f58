"""OpenTelemetry traces across kes: one trace from a command to every handler of its events.

Optional: with ``opentelemetry-api`` installed (``pip install 'kes[otel]'``) and a tracer
provider set by the application (the SDK, an exporter), kes

* wraps each append in a ``kes.append <AggregateType>`` span (a child of the span active
  when ``save``/``append`` is called) and writes that span's W3C trace context into each
  event: in its ``metadata`` (``traceparent``, ``tracestate``) and, from there, in the
  record headers of the same names (docs/wire-format.md);
* continues that trace in projections and processors: each handler call runs in a
  ``kes.handle <projection>`` span whose parent is the append's span;
* continues a ``traceparent`` request header in ``kes serve``'s appends.

Without the package, or without a provider, nothing is recorded and nothing changes on
the wire. An event that already carries ``traceparent`` in its metadata keeps it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from kes.envelope import NewEvent

__all__ = ["TRACE_HEADERS", "active", "append_span", "continued", "handler_span"]

TRACE_HEADERS = ("traceparent", "tracestate")

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import ProxyTracerProvider, SpanKind
except ImportError:  # the optional dependency is absent: tracing is off
    trace = None  # type: ignore[assignment]

_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def active() -> bool:
    """Whether spans are recorded: OpenTelemetry is installed and a provider was set."""
    return trace is not None and not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


@contextlib.contextmanager
def append_span(
    aggregate_type: str, aggregate_id: str, events: Sequence[NewEvent]
) -> Iterator[Sequence[NewEvent]]:
    """Run an append in its span; yields ``events`` carrying that span's trace context
    in their metadata (``events`` unchanged when tracing is off)."""
    if not active():
        yield events
        return
    tracer = trace.get_tracer("kes")
    with tracer.start_as_current_span(
        f"kes.append {aggregate_type}",
        kind=SpanKind.PRODUCER,
        attributes={
            "kes.aggregate_type": aggregate_type,
            "kes.aggregate_id": aggregate_id,
            "kes.events": len(events),
        },
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if not carrier:
            yield events
            return
        yield [
            msgspec.structs.replace(e, metadata={**carrier, **e.metadata})
            if "traceparent" not in e.metadata
            else e
            for e in events
        ]


def handler_span(consumer: str, msg: Any) -> contextlib.AbstractContextManager[Any]:
    """A span around one handler call of ``consumer`` for the record ``msg``, child of
    the trace the record carries in its headers (a new trace when it carries none)."""
    if not active():
        return _NO_SPAN
    carrier = {
        name: value.decode(errors="replace")
        for name, value in msg.headers() or ()
        if name in TRACE_HEADERS and isinstance(value, bytes)
    }
    return trace.get_tracer("kes").start_as_current_span(
        f"kes.handle {consumer}",
        context=propagate.extract(carrier),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": msg.topic(),
            "messaging.kafka.destination.partition": msg.partition(),
            "messaging.kafka.message.offset": msg.offset(),
            "kes.consumer": consumer,
        },
    )


@contextlib.contextmanager
def continued(headers: Mapping[str, str]) -> Iterator[None]:
    """Make the trace of incoming (HTTP) ``headers`` the current context, if any."""
    if not active():
        yield
        return
    carrier = {k: v for k, v in headers.items() if k.lower() in TRACE_HEADERS}
    if not carrier:
        yield
        return
    from opentelemetry import context

    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)
