#!/usr/bin/env bash
# Java (>= 17, with its compiler: `kes serve`'s cross-language test runs a single-file Java
# client) runs Apache Kafka; Maven fetches its jars; Debian's Chromium and its driver drive
# the web event browser's test (tests/test_serve_browser.py). Install them when missing.
set -euo pipefail
need=()
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  need+=(openjdk-17-jdk-headless)
elif ! command -v javac >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  need+=(openjdk-17-jdk-headless)
fi
if [ -z "${KAFKA_HOME:-}" ] && ! command -v mvn >/dev/null 2>&1; then
  need+=(maven)
fi
if ! command -v chromium >/dev/null 2>&1; then
  need+=(chromium)
fi
if ! command -v chromedriver >/dev/null 2>&1; then
  need+=(chromium-driver)
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
