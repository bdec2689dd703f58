"""Find Apache Kafka's jars: KAFKA_HOME when set, else resolve them from Maven Central."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kes.broker.errors import BrokerError

DEFAULT_KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
SLF4J_VERSION = "2.0.17"  # Kafka's tools pull slf4j 1.7, which cannot see the log4j2 binding
LAYOUT = "r2"  # bump when the jar set changes, so caches refetch

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kes</groupId><artifactId>kes-broker-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def kafka_version() -> str:
    return os.environ.get("KES_KAFKA_VERSION", DEFAULT_KAFKA_VERSION)


def cache_dir() -> Path:
    base = os.environ.get("KES_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kes"
    )
    return Path(base)


def java_executable() -> str:
    """The java binary to run Kafka with (JAVA_HOME first, then PATH)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            "Java was not found (no JAVA_HOME/bin/java and no java on PATH). Apache Kafka 4 "
            "needs Java 17 or newer: install it (apt-get install openjdk-17-jre-headless) "
            "or set JAVA_HOME."
        )
    return found


def libs_dir(progress: bool = True) -> Path:
    """A folder holding every jar the broker needs; fetched once and cached."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"KAFKA_HOME={home} holds no libs/kafka_2.13-*.jar; point it at an unpacked "
                "Apache Kafka distribution or unset it to fetch Kafka from Maven Central."
            )
        return libs
    version = kafka_version()
    target = cache_dir() / f"kafka-{version}-{LAYOUT}"
    libs = target / "libs"
    marker = target / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is needed to fetch Apache Kafka's jars and is not on PATH: "
            "install it (apt-get install maven) or set KAFKA_HOME to a Kafka distribution."
        )
    target.mkdir(parents=True, exist_ok=True)
    (target / "pom.xml").write_text(
        _POM.format(kafka=version, log4j=LOG4J_VERSION, slf4j=SLF4J_VERSION)
    )
    if progress:
        print(f"fetching Apache Kafka {version} jars from Maven Central into {libs} ...")
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(target / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise BrokerError(
            f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} "
            f"(exit {proc.returncode}). Check that Maven Central is reachable, or set "
            f"KAFKA_HOME.\n{tail}"
        )
    marker.write_text(version)
    return libs
