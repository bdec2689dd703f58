"""A command, its append and a projection of its events, in a process of their own (a
tracer provider can be set once per process): prints JSON with the spans recorded and the
headers of the records written.

    python -m tests.workers.traced --config JSON --mode sdk|absent

``sdk``: OpenTelemetry's SDK with an in-memory exporter; ``absent``: the opentelemetry
package cannot be imported at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--mode", choices=["sdk", "absent"], required=True)
    args = parser.parse_args()
    exporter = None
    if args.mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails
    else:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

    from examples.users.domain import User

    from kes import tracing
    from kes.application import Application
    from kes.projections import Projection, ProjectionRunner
    from kes.store.kafka import KafkaConfig, KafkaEventStore
    from tests.faults import read_topic

    config = KafkaConfig(**json.loads(args.config))
    store = KafkaEventStore(config)
    app = Application(store)
    handled: list[str] = []

    class Directory(Projection):
        name = "traced-directory"
        aggregate_types = ("User",)

        def on_UserCreated(self, event: Any) -> None:
            handled.append(event.aggregate_id)

        def on_EmailChanged(self, event: Any) -> None:
            handled.append(event.aggregate_id)

    if exporter is not None:
        from opentelemetry import trace

        with trace.get_tracer("app").start_as_current_span("register user"):
            user = User(user_id="u1", username="ann", email="ann@example.com")
            user.change_email("ann@example.org")
            app.save(user)
        # An HTTP request's trace (kes serve continues it the same way).
        incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        with tracing.continued({"traceparent": incoming}):
            app.save(User(user_id="u2", username="bob", email="bob@example.com"))
    else:
        app.save(User(user_id="u1", username="ann", email="ann@example.com"))
    ProjectionRunner(Directory(), config, until_caught_up=True).run()
    store.close()
    records = read_topic(config.bootstrap_servers, config.topic("User"), config.partitions)
    spans = []
    if exporter is not None:
        for s in exporter.get_finished_spans():
            spans.append(
                {
                    "name": s.name,
                    "trace": f"{s.context.trace_id:032x}",
                    "id": f"{s.context.span_id:016x}",
                    "parent": f"{s.parent.span_id:016x}" if s.parent else None,
                    "kind": s.kind.name,
                }
            )
    print(
        json.dumps(
            {
                "spans": spans,
                "handled": handled,
                "records": [
                    {
                        "aggregateId": r.json()["aggregateId"],
                        "metadata": r.json()["metadata"],
                        "headers": {k: v.decode() for k, v in r.headers.items()},
                    }
                    for r in records
                ],
                "tracing_active": tracing.active(),
            }
        )
    )


if __name__ == "__main__":
    main()
