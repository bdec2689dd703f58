#!/usr/bin/env bash
# Soak: run the eventsourcing module's Kafka tests (the library's own test cases, the
# module's own, the bank race) ROUNDS times against KES_BOOTSTRAP_SERVERS; one line per
# round with its pytest summary, then how many rounds failed. Flakiness shows here.
#   KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 scripts/eventsourcing_soak.sh 5
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
PYTEST="${PYTEST:-.venv/bin/pytest}"
failed=0
for ((i = 1; i <= ROUNDS; i++)); do
    line=$("$PYTEST" -q -p no:cacheprovider tests/test_eventsourcing_library.py \
        tests/test_eventsourcing_kafka.py tests/test_eventsourcing_bank.py 2>&1 | tail -1)
    status=$?
    echo "round $i: $line"
    [[ "$line" == *failed* || "$line" == *error* ]] && failed=$((failed + 1))
done
echo "rounds: $ROUNDS, failed: $failed"
[[ $failed -eq 0 ]]
