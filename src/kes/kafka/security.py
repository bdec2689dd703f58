"""Who kes is on a secured Kafka, and whether it may connect at all.

* :func:`principal_label` - the principal a configuration authenticates as, for messages
  (``KafkaConfig.principal_name``: ``KES_PRINCIPAL``, the SASL user, or the common name
  of the client certificate; kes puts its tag into the names of the resources each
  process makes for itself, so that ACLs give each principal its own and no other's).
* :func:`check_connection` - connect, authenticate and read metadata once, so that a
  wrong password, an unknown user, an untrusted certificate or a security protocol that
  does not match the listener is reported within seconds, as a
  :class:`~kes.errors.AuthenticationError`, instead of librdkafka retrying forever.
* :func:`register_scram_user` - create or change a SCRAM-SHA-512 credential (the local
  broker's users; ``kafka-configs --alter --add-config SCRAM-SHA-512=[...]`` elsewhere).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException

from kes.errors import AuthenticationError

if TYPE_CHECKING:
    from kes.kafka.config import KafkaConfig

__all__ = [
    "CHECK_TIMEOUT_S",
    "check_connection",
    "principal_label",
    "register_scram_user",
    "security_failure",
]

# A security failure is reported within this bound (kes promises 10 s: docs/operations.md).
CHECK_TIMEOUT_S = 8.0


def principal_label(config: KafkaConfig) -> str:
    """How a message names the principal: ``User:alice``, or how it is unknown."""
    name = config.principal_name
    if name is not None:
        return f"User:{name}"
    cert = config.client.get("ssl.certificate.location")
    if cert:
        return f"the principal of certificate {cert}"
    return "User:ANONYMOUS"


# ---- failing fast ---------------------------------------------------------------------


def security_failure(
    err: KafkaError, servers: str, conf: Mapping[str, Any], who: str
) -> AuthenticationError | None:
    """The AuthenticationError ``err`` means, or None when it is not about security."""
    code = err.code()
    text = err.str()
    protocol = str(conf.get("security.protocol", "PLAINTEXT")).upper()
    mechanism = conf.get("sasl.mechanism", "GSSAPI")
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        if "SASL" in text or protocol.startswith("SASL"):
            return AuthenticationError(
                f"Kafka at {servers} refused to authenticate {who} with {mechanism} "
                f"({text}): the user is unknown or the password is wrong (Kafka does not "
                "say which). Nothing was done. Check KES_KAFKA_SASL_USERNAME and "
                "KES_KAFKA_SASL_PASSWORD, and that the user has a "
                f"{mechanism} credential (`kes broker user add NAME` on a local broker).",
                principal=who,
            )
        return AuthenticationError(
            f"Kafka at {servers} refused to authenticate {who} ({text}). Check the client "
            "certificate (KES_KAFKA_SSL_CERTIFICATE_LOCATION, KES_KAFKA_SSL_KEY_LOCATION): "
            "it must be signed by a CA the brokers trust. Nothing was done.",
            principal=who,
        )
    if code == KafkaError._SSL or "SSL routines" in text or "SSL handshake failed" in text:
        if "certificate verify failed" in text:
            return AuthenticationError(
                f"the TLS certificate of Kafka at {servers} is not trusted ({text}). Point "
                "KES_KAFKA_SSL_CA_LOCATION at the CA that signed the brokers' certificates; "
                "nothing was done.",
                principal=who,
            )
        cert = conf.get("ssl.certificate.location")
        given = (
            f"the client certificate {cert} is not signed by a CA the brokers trust"
            if cert
            else "the listener asks for a client certificate and none is configured (set "
            "KES_KAFKA_SSL_CERTIFICATE_LOCATION and KES_KAFKA_SSL_KEY_LOCATION, or use the "
            "SASL_SSL listener)"
        )
        return AuthenticationError(
            f"Kafka at {servers} refused the TLS connection of {who} ({text}): {given}. "
            "Nothing was done.",
            principal=who,
        )
    if code == KafkaError._TRANSPORT and "security.protocol" in text:
        return _wrong_protocol(servers, conf, text)
    return None


_checked: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
# One check at a time: librdkafka's log lines are captured to tell a listener that
# closes the connection of a client speaking the wrong protocol (only logged) from a
# broker that is down.
_check_lock = threading.Lock()
_check_log = logging.getLogger("kes.kafka.check")
_check_log.propagate = False
_check_log.setLevel(logging.DEBUG)
_lines: list[str] = []


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _lines.append(record.getMessage())


_check_log.addHandler(_Capture())
# "Disconnected ... (after 3ms in state APIVERSION_QUERY)": the listener closed a
# connection that was up, at the first request or handshake, twice: it speaks another
# security protocol than the client.
_CLOSED_AT_HELLO = re.compile(r"Disconnected.*in state (APIVERSION_QUERY|SSL_HANDSHAKE|AUTH)")


def check_connection(
    servers: str, conf: Mapping[str, Any], who: str, timeout: float = CHECK_TIMEOUT_S
) -> None:
    """Connect to ``servers`` with ``conf`` and read metadata; raise AuthenticationError
    (within ``timeout``) when authentication or the TLS handshake fails or the security
    protocol does not match the listener. Done once per process and settings: a check
    that passed is not repeated. When Kafka does not answer at all, returns: that is not
    a security failure, and the caller's own timeouts report it.
    """
    key = (servers, tuple(sorted((k, str(v)) for k, v in conf.items() if k != "logger")))
    with _check_lock:
        if key in _checked:
            return
        _lines.clear()
        _check(servers, conf, who, timeout)
        _checked.add(key)


def _check(servers: str, conf: Mapping[str, Any], who: str, timeout: float) -> None:
    from kes.kafka.clients import admin_with

    errors: list[KafkaError] = []
    admin = admin_with(
        {"bootstrap.servers": servers, **conf},
        error_cb=errors.append,
        logger=_check_log,
        # One attempt per broker is enough to see a refusal: no back-off of seconds.
        **{"reconnect.backoff.max.ms": 500, "log_level": 6},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        admin.poll(0.2)  # serves error_cb and the log
        for err in errors:
            failure = security_failure(err, servers, conf, who)
            if failure is not None:
                raise failure
        closed = [line for line in _lines if _CLOSED_AT_HELLO.search(line)]
        if len(closed) >= 2:
            raise _wrong_protocol(servers, conf, closed[-1])
        if _nothing_listens(errors) and not closed:
            return  # not a security failure: the caller's own timeouts report it
        try:
            admin.list_topics(timeout=0.3)
            return
        except KafkaException:
            continue


def _nothing_listens(errors: list[KafkaError]) -> bool:
    """Every bootstrap server refused the TCP connection: Kafka is down, not refusing us."""
    down = any(e.code() == KafkaError._ALL_BROKERS_DOWN for e in errors)
    transport = [e for e in errors if e.code() == KafkaError._TRANSPORT]
    return down and bool(transport) and all("Connect to" in e.str() for e in transport)


def _wrong_protocol(servers: str, conf: Mapping[str, Any], line: str) -> AuthenticationError:
    protocol = str(conf.get("security.protocol", "PLAINTEXT")).upper()
    detail = line.split("]: ", 1)[-1]
    return AuthenticationError(
        f"Kafka at {servers} closed the connection of this {protocol} client at its first "
        f"request ({detail}): the listener speaks another security protocol. Set "
        "KES_KAFKA_SECURITY_PROTOCOL to the listener's (SASL_SSL or SSL; PLAINTEXT only on "
        "an unsecured cluster) and its credentials; nothing was done."
    )


def register_scram_user(
    admin_conf: Mapping[str, Any],
    name: str,
    password: str,
    node_servers: Sequence[str],
    timeout: float = 30.0,
) -> None:
    """Create or change user ``name``'s SCRAM-SHA-512 credential (through the admin API,
    so the password never appears on a command line), then wait until every node in
    ``node_servers`` accepts it."""
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    from kes.kafka.clients import admin_with
    from kes.kafka.errors import kafka_errors

    admin = admin_with(dict(admin_conf), log_level=0)
    upsert = UserScramCredentialUpsertion(
        name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
    )
    with kafka_errors(f"creating the SCRAM-SHA-512 credential of user {name!r}"):
        admin.alter_user_scram_credentials([upsert])[name].result(timeout=timeout)
    login = {
        **{k: v for k, v in admin_conf.items() if k != "bootstrap.servers"},
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": name,
        "sasl.password": password,
    }
    for k in ("ssl.certificate.location", "ssl.key.location"):
        login.pop(k, None)
    deadline = time.monotonic() + timeout
    for server in node_servers:
        while True:
            try:
                # The credential reaches each node with the metadata log: retry the
                # refusals of a node that has not applied it yet.
                check_connection(server, login, f"User:{name}", timeout=5)
                break
            except AuthenticationError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
