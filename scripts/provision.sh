#!/usr/bin/env bash
# Java (>= 17) runs Apache Kafka; Maven fetches its jars. Install them when missing.
set -euo pipefail
need=()
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  need+=(openjdk-17-jre-headless)
fi
if [ -z "${KAFKA_HOME:-}" ] && ! command -v mvn >/dev/null 2>&1; then
  need+=(maven)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]} ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
