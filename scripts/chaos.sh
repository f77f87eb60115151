#!/usr/bin/env bash
# The chaos suite's long run (make chaos): every fault scenario of internal/chaos, CHAOS_RUNS
# times each (3), on the real test Asterisk and Redis, with the race detector. The full log goes
# to ${CHAOS_LOG:-chaos.log}; the scenarios' results and the summary (runs, faults, violations)
# are printed. CHAOS_SCENARIO=<name> runs one scenario only. Exits non-zero on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${CHAOS_LOG:-chaos.log}
status=0
EARPIECE_CHAOS_RUNS=${CHAOS_RUNS:-3} EARPIECE_CHAOS_SCENARIO=${CHAOS_SCENARIO:-} \
  ${GO:-go} test -race -count=1 -timeout 30m -run '^TestChaos$' -v ./internal/chaos/ >"$log" 2>&1 || status=$?
grep -E '^    --- (PASS|FAIL)|violation:|^chaos:|refused by ear with' "$log" || true
echo "chaos: full log in $log (exit $status)"
exit "$status"
