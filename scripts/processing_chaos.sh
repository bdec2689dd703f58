#!/usr/bin/env bash
# The 3-node processing chaos tests (tests/test_processing_cluster.py) ROUNDS times in a
# row for each kind (exactly-once SQL projection, Kafka->Kafka processor, windowed
# pipeline), each round with its own seed (KES_CHAOS_SEED: which broker dies, when the
# members are killed). One line per round, then a count per kind; each round's output is
# kept in .kes/chaos/<kind>-<seed>.log. The 3-node test cluster is started by the first
# round and left running for the next ones (`kes broker stop --data-dir
# .kes/test-cluster3` stops it).
#   scripts/processing_chaos.sh 10            # all three kinds, seeds 1..10
#   scripts/processing_chaos.sh 3 pipeline    # one kind
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-10}"
KINDS=("${@:2}")
[[ ${#KINDS[@]} -eq 0 ]] && KINDS=(sql kafka_processor pipeline)
PYTEST="${PYTEST:-.venv/bin/pytest}"
mkdir -p .kes/chaos
summary=()
status=0
for kind in "${KINDS[@]}"; do
    passed=0
    for ((seed = 1; seed <= ROUNDS; seed++)); do
        log=".kes/chaos/$kind-$seed.log"
        start=$(date +%s)
        KES_CHAOS_SEED=$seed "$PYTEST" -q -s -p no:cacheprovider \
            tests/test_processing_cluster.py -k "$kind" >"$log" 2>&1
        rc=$?
        line=$(grep -E "passed|failed|error" "$log" | tail -1)
        echo "$kind seed $seed: ${line:-no summary (exit $rc)} ($(($(date +%s) - start))s)"
        [[ $rc -eq 0 ]] && passed=$((passed + 1))
    done
    summary+=("$kind: $passed/$ROUNDS passed")
    [[ $passed -eq $ROUNDS ]] || status=1
done
printf '%s\n' "${summary[@]}"
exit $status
