"""Local Apache Kafka for development and tests: fetch jars, start/stop nodes."""

from kes.broker.cluster import DEFAULT_DATA_DIR, DEFAULT_PORT, LocalCluster, Node
from kes.broker.errors import BrokerError
from kes.broker.jars import DEFAULT_KAFKA_VERSION, libs_dir

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_KAFKA_VERSION",
    "DEFAULT_PORT",
    "BrokerError",
    "LocalCluster",
    "Node",
    "libs_dir",
]
