"""Where Kafka is, and the one namespace every name kes gives to Kafka derives from.

Every topic, consumer group and transactional id kes creates is named by a method of
:class:`KafkaConfig` from ``namespace`` (env ``KES_NAMESPACE``): two applications with
different namespaces share a cluster without seeing or fencing each other. The full
list is the topic catalogue in :mod:`kes.kafka.topics`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kes.errors import InvalidInputError

# librdkafka reports transient states (a coordinator still loading, a broker restarting)
# as warnings it then retries; kes handles them. Show only errors unless asked for more.
librdkafka_log = logging.getLogger("kes.kafka")
if librdkafka_log.level == logging.NOTSET:
    librdkafka_log.setLevel(logging.ERROR)

DEFAULT_NAMESPACE = "kes"
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

Role = Literal["writer", "client"]


def _default_member_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


_TAG_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def principal_tag(name: str) -> str:
    """A principal's name as a part of a Kafka resource name (letters, digits, '_' and
    '-'; anything else becomes '_'). kes names the resources each process makes for
    itself with it, and ``kes acl grant`` gives each principal the names with its own tag."""
    return _TAG_CHARS.sub("_", name.removeprefix("User:"))


def _common_name(path: str) -> str | None:
    """The subject common name of a PEM certificate (None without ``cryptography``)."""
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID
    except ImportError:  # pragma: no cover - an optional dependency
        return None
    try:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError):
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def namespace_of(topic_prefix: str) -> str:
    """The namespace a bare ``topic_prefix`` implies: ``"a."`` -> ``a``,
    ``"shop.events."`` -> ``shop``, ``""`` -> ``kes``."""
    core = topic_prefix.rstrip(".").removesuffix(".events")
    return core or DEFAULT_NAMESPACE


@dataclass(frozen=True)
class KafkaConfig:
    """Where Kafka is and how kes names and uses what it creates there.

    ``client`` is merged into every confluent-kafka client kes creates (security:
    ``security.protocol``, ``sasl.*``, ``ssl.*``). ``namespace`` prefixes every topic,
    group and transactional id; ``topic_prefix`` overrides only the event topics' prefix
    (default ``<namespace>.events.``; given alone, it implies the namespace).

    ``role="writer"`` processes own partitions and write; ``role="client"`` processes
    (web workers, CLIs) own nothing and forward appends to the writers. ``instance_id``
    makes a writer a static group member: restarted with the same id within
    ``session_timeout_ms``, it gets its partitions back without a rebalance.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    # Never in repr(): it holds passwords and key paths.
    client: dict[str, Any] = field(default_factory=dict, repr=False)
    namespace: str | None = None  # None: from topic_prefix, else "kes"
    topic_prefix: str | None = None  # None: "<namespace>.events."
    partitions: int = 12
    replication_factor: int | None = None  # None: min(3, brokers)
    role: Role = "writer"
    instance_id: str | None = None
    index_dir: str = ".kes/index"
    session_timeout_ms: int = 10_000
    # Bounds how long a writer that died mid-transaction can hold back readers and the
    # next owner (see docs/design.md, "Takeover"); a transaction normally lasts ms.
    transaction_timeout_ms: int = 10_000
    request_timeout_s: float = 30.0
    ready_timeout_s: float = 60.0
    max_batch_events: int = 10_000  # per transaction
    index_checkpoint_every: int = 50_000  # events between index snapshots on disk
    recent_event_ids: int = 20_000  # per partition: repeated appends within it are no-ops
    # Event times further ahead of this machine's clock are refused: Kafka refuses record
    # timestamps more than log.message.timestamp.after.max.ms (1 h by default) ahead, and
    # a pipeline that stamps its records with event time would stall on them.
    max_event_time_ahead_s: float = 3300.0
    member_name: str = field(default_factory=_default_member_name)
    # ``User:<name>`` this process authenticates as; None: the SASL user or the client
    # certificate's common name (kes.kafka.security.principal_name).
    principal: str | None = None

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise InvalidInputError("bootstrap_servers is empty; set KES_BOOTSTRAP_SERVERS.")
        if self.partitions < 1:
            raise InvalidInputError(f"partitions must be >= 1, got {self.partitions}.")
        if self.namespace is not None and not _NAMESPACE.match(self.namespace):
            raise InvalidInputError(
                f"namespace {self.namespace!r} may hold only letters, digits, '.', '_' and "
                "'-', and must start with a letter or digit (it prefixes Kafka names)."
            )
        if self.role not in ("writer", "client"):
            raise InvalidInputError(f"role must be 'writer' or 'client', got {self.role!r}.")
        if self.max_event_time_ahead_s <= 0:
            raise InvalidInputError(
                f"max_event_time_ahead_s must be > 0, got {self.max_event_time_ahead_s}."
            )
        if self.transaction_timeout_ms < 1000:
            raise InvalidInputError(
                f"transaction_timeout_ms must be >= 1000, got {self.transaction_timeout_ms}."
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> KafkaConfig:
        """Settings from the environment (``environ``, default ``os.environ``), ``overrides``
        (KafkaConfig fields) on top.

        ``KES_BOOTSTRAP_SERVERS``, ``KES_NAMESPACE``, ``KES_TOPIC_PREFIX``,
        ``KES_PARTITIONS``, ``KES_REPLICATION_FACTOR``, ``KES_ROLE`` (writer|client),
        ``KES_INSTANCE_ID``, ``KES_INDEX_DIR``, ``KES_SESSION_TIMEOUT_MS``,
        ``KES_TRANSACTION_TIMEOUT_MS``, ``KES_REQUEST_TIMEOUT_S``, ``KES_PRINCIPAL``,
        ``KES_MAX_EVENT_TIME_AHEAD_S``
        (``User:<name>``, when kes cannot tell it from the SASL user or the client
        certificate), and ``KES_KAFKA_<SETTING>`` passed to confluent-kafka as
        ``<setting>`` (e.g. ``KES_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` ->
        ``security.protocol``). ``KES_CLIENT_PROPERTIES`` names a file of librdkafka
        ``key=value`` settings (secrets need not be in the environment, e.g. the one
        ``kes broker start --secure`` writes); ``KES_KAFKA_*`` win over it, and its
        ``bootstrap.servers`` is used when ``KES_BOOTSTRAP_SERVERS`` is not set.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        client: dict[str, Any] = {}
        properties = env.get("KES_CLIENT_PROPERTIES")
        if properties:
            client = read_properties(properties)
            servers = client.pop("bootstrap.servers", None)
            if servers:
                values["bootstrap_servers"] = servers
        for name, key, kind in _ENV:
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[key] = kind(raw)
            except ValueError:
                raise InvalidInputError(
                    f"{name}={raw!r} is not a valid {kind.__name__}; fix or unset it."
                ) from None
        client.update(
            {
                k[len("KES_KAFKA_") :].lower().replace("_", "."): v
                for k, v in env.items()
                if k.startswith("KES_KAFKA_")
            }
        )
        if client:
            values["client"] = client
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    # ---- who (kes.kafka.security) ---------------------------------------------------

    @property
    def principal_name(self) -> str | None:
        """The name of the principal this configuration authenticates as (``User:<name>``),
        when kes can tell: ``principal`` (``KES_PRINCIPAL``), else the SASL user name,
        else the client certificate's common name (the mapping rule of ``kes broker``;
        set ``KES_PRINCIPAL`` where a cluster maps certificates otherwise). None for an
        anonymous (PLAINTEXT) client."""
        if self.principal:
            return self.principal.removeprefix("User:")
        user = self.client.get("sasl.username")
        if user:
            return str(user)
        cert = self.client.get("ssl.certificate.location")
        return _common_name(str(cert)) if cert else None

    @property
    def _own(self) -> str:
        """``<principal tag>.`` when the principal is known: the part of the names of a
        process's own resources that ACLs give to that principal alone."""
        name = self.principal_name
        return f"{principal_tag(name)}." if name else ""

    # ---- names (the catalogue in kes.kafka.topics lists them all) --------------------

    @property
    def ns(self) -> str:
        """The namespace in effect."""
        if self.namespace is not None:
            return self.namespace
        if self.topic_prefix is not None:
            return namespace_of(self.topic_prefix)
        return DEFAULT_NAMESPACE

    @property
    def events_prefix(self) -> str:
        """What every event topic's name starts with."""
        return self.topic_prefix if self.topic_prefix is not None else f"{self.ns}.events."

    def topic(self, aggregate_type: str) -> str:
        """The event topic of an aggregate type."""
        return self.events_prefix + aggregate_type

    def request_topic(self, aggregate_type: str) -> str:
        """Where appends and reads for an aggregate type's partitions are forwarded."""
        return self.topic(aggregate_type) + REQUEST_SUFFIX

    def writer_group(self, aggregate_type: str) -> str:
        """The consumer group whose assignment decides who owns which partition."""
        return f"{self.ns}.writers.{aggregate_type}"

    def writer_transactional_id(self) -> str:
        """One per writer process; stable across restarts when ``instance_id`` is set, so
        that a restarted writer aborts what its previous incarnation left open. Carries
        the principal's tag when known, so that a principal can be allowed its own
        writers' ids and no other (nobody else can fence them)."""
        return f"{self.ns}.writer.{self._own}{self.instance_id or self.member_name}"

    def reader_group(self) -> str:
        """A group id for a consumer that only assigns partitions (librdkafka needs one and
        looks up its coordinator, which needs DESCRIBE on it): never joined, unique, and
        with the principal's tag so that one prefixed ACL covers them all."""
        return f"{self.ns}.reader.{self._own}{uuid.uuid4().hex}"

    def reply_topic(self) -> str:
        """Where this process receives the answers to what it forwarded (with the
        principal's tag when known: only that principal may read or delete it)."""
        return f"{self.ns}.replies.{self._own}{self.member_name}"

    @property
    def replies_prefix(self) -> str:
        """What every reply topic of the namespace starts with: an owner answers only to
        topics named so, whatever a request claims."""
        return f"{self.ns}.replies."

    def snapshot_topic(self) -> str:
        """The compacted topic of every aggregate type's snapshots."""
        part = self.events_prefix.strip(".")
        return f"{self.ns}.snapshots.{part}" if part else f"{self.ns}.snapshots"

    def key_topic(self) -> str:
        """The compacted single-partition topic of the data subjects' keys."""
        return f"{self.ns}.keys"

    def schema_topic(self) -> str:
        """The registry's compacted single-partition topic (Confluent keeps ``_schemas``)."""
        return f"_{self.ns}_schemas"

    def schema_transactional_id(self, topic: str) -> str:
        return f"{self.ns}-schemas.{topic}"

    def group_id(self, name: str) -> str:
        """The consumer group of a projection or processor named ``name``. A user's own
        name is kept as it is in the default namespace (so upgrades keep positions)."""
        return name if self.ns == DEFAULT_NAMESPACE else f"{self.ns}.{name}"

    def processor_transactional_id(self, name: str) -> str:
        return f"{self.group_id(name)}.{self.member_name}"

    def dlq_topic(self, consumer: str) -> str:
        """Dead letters of a projection or pipeline."""
        return f"{self.ns}.dlq.{consumer}"

    def derive_group(self, aggregate_types: tuple[str, ...]) -> str:
        return f"{self.ns}.derive." + "+".join(aggregate_types)

    def stream_group(self, pipeline: str) -> str:
        """The consumer group of a pipeline (Quix names its internal topics after it)."""
        return f"{self.ns}.stream.{pipeline}"

    def late_topic(self, pipeline: str) -> str:
        return self.stream_group(pipeline) + ".late"

    @property
    def open_transaction_wait_s(self) -> float:
        """How long a read may be held back by a transaction left open: its timeout, plus
        the broker's abort sweep (``transaction.abort.timed.out.transaction.cleanup
        .interval.ms``, 10 s by default; 1 s on ``kes broker``), plus a margin."""
        return self.transaction_timeout_ms / 1000 + 12.0


REQUEST_SUFFIX = ".requests"


def read_properties(path: str) -> dict[str, str]:
    """``key=value`` lines (``#`` comments) of a client properties file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidInputError(
            f"KES_CLIENT_PROPERTIES={path}: cannot read it ({exc.strerror}); fix or unset it."
        ) from None
    out = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith(("#", "!")):
            out[key.strip()] = value.strip()
    return out


_ENV: tuple[tuple[str, str, type], ...] = (
    ("KES_BOOTSTRAP_SERVERS", "bootstrap_servers", str),
    ("KES_NAMESPACE", "namespace", str),
    ("KES_TOPIC_PREFIX", "topic_prefix", str),
    ("KES_PARTITIONS", "partitions", int),
    ("KES_REPLICATION_FACTOR", "replication_factor", int),
    ("KES_ROLE", "role", str),
    ("KES_INSTANCE_ID", "instance_id", str),
    ("KES_INDEX_DIR", "index_dir", str),
    ("KES_SESSION_TIMEOUT_MS", "session_timeout_ms", int),
    ("KES_TRANSACTION_TIMEOUT_MS", "transaction_timeout_ms", int),
    ("KES_REQUEST_TIMEOUT_S", "request_timeout_s", float),
    ("KES_PRINCIPAL", "principal", str),
    ("KES_MAX_EVENT_TIME_AHEAD_S", "max_event_time_ahead_s", float),
)
