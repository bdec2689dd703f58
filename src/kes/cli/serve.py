"""``kes serve``: the HTTP and SSE gateway, schema registry API and web event browser."""

from __future__ import annotations

import click

from kes import logs
from kes.cli.options import bootstrap_option, kafka_config, log_format_option, prefix_option
from kes.errors import InvalidInputError

# uvicorn's httptools parser drops the body of a request that asks to upgrade to h2c,
# which Java's HttpClient does by default on plain http: kes serves with h11.
HTTP_IMPL = "h11"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--tokens",
    "tokens_file",
    default=None,
    envvar="KES_SERVE_TOKENS_FILE",
    type=click.Path(dir_okay=False),
    help="File of 'TOKEN ROLES [NAME]' lines, roles among read,append,admin (env "
    "KES_SERVE_TOKENS_FILE; KES_SERVE_TOKENS holds the same entries separated by ';'). "
    "Required to listen on a non-loopback address.",
)
@click.option(
    "--role",
    type=click.Choice(["writer", "client"]),
    default=None,
    help="Own partitions and write (writer, default: KES_ROLE) or forward appends "
    "to the writers (client).",
)
@click.option(
    "--max-body-bytes", default=4 * 1024 * 1024, show_default=True, type=click.IntRange(1)
)
@click.option("--max-events-per-append", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--max-sse-connections", default=256, show_default=True, type=click.IntRange(1))
@click.option(
    "--sse-send-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a subscriber may leave a write unread before it is cut off.",
)
@click.option(
    "--tail-bytes",
    default=32 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Bytes of recent events kept in memory per followed aggregate type.",
)
@click.option(
    "--cors-origin",
    multiple=True,
    help="Allow browser calls from this origin (repeatable). CORS is off without it.",
)
@click.option("--ssl-certfile", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--ssl-keyfile", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--schemas/--no-schemas",
    default=True,
    show_default=True,
    help="Serve the schema registry's Confluent-compatible API too.",
)
@click.option(
    "--schemas-topic",
    envvar="KES_SCHEMAS_TOPIC",
    default=None,
    help="The registry's topic (env KES_SCHEMAS_TOPIC; default _<namespace>_schemas).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@log_format_option
@bootstrap_option
@prefix_option
def serve(
    host: str,
    port: int,
    tokens_file: str | None,
    role: str | None,
    max_body_bytes: int,
    max_events_per_append: int,
    max_sse_connections: int,
    sse_send_timeout: float,
    tail_bytes: int,
    cors_origin: tuple[str, ...],
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    schemas: bool,
    schemas_topic: str | None,
    log_level: str,
    log_format: str,
    bootstrap_servers: str,
    topic_prefix: str | None,
) -> None:
    """Serve the event store over HTTP and Server-Sent Events, the schema registry's
    Confluent-compatible API, and the web event browser at /ui (docs/serve.md)."""
    try:
        import uvicorn

        from kes.serve import ServeSettings, create_app
    except ImportError as exc:
        raise InvalidInputError(
            f"kes serve needs its extra: pip install 'kes[serve]' ({exc})."
        ) from None
    from kes.schemas.registry import SchemaRegistry
    from kes.store.kafka.keys import KafkaKeyRing
    from kes.store.kafka.store import KafkaEventStore

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise InvalidInputError("TLS needs both --ssl-certfile and --ssl-keyfile.")
    settings = ServeSettings(
        tokens=ServeSettings.load_tokens(tokens_file),
        max_body_bytes=max_body_bytes,
        max_events_per_append=max_events_per_append,
        max_sse_connections=max_sse_connections,
        sse_send_timeout_s=sse_send_timeout,
        tail_bytes=tail_bytes,
        cors_origins=cors_origin,
    )
    settings.check_listen(host)
    config = kafka_config(bootstrap_servers, topic_prefix, role=role)
    logs.configure(log_level.upper(), log_format)
    keys = KafkaKeyRing.from_env(config)  # a KEK given is checked now
    store = KafkaEventStore(config)
    registry = SchemaRegistry(config, topic=schemas_topic) if schemas else None
    try:
        app = create_app(store, settings, registry, keys)
        scheme = "https" if ssl_certfile else "http"
        click.echo(
            f"kes serve: {scheme}://{host}:{port} (UI at /ui, API at /openapi.json); "
            f"Kafka {config.bootstrap_servers}, namespace {config.ns}, "
            f"{'tokens: ' + str(len(settings.tokens)) if settings.tokens else 'no authentication'}"
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            http=HTTP_IMPL,
            log_level=log_level,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            access_log=log_level == "debug",
            # JSON: uvicorn's loggers go through the root logger set up above
            log_config=None if log_format == "json" else uvicorn.config.LOGGING_CONFIG,
            timeout_graceful_shutdown=5,
        )
    finally:
        if registry is not None:
            registry.close()
        keys.close()
        store.close()
