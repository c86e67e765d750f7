#!/usr/bin/env bash
# `make flakes`: the whole suite RUNS times in a row beside `stress-ng --cpu CPUS` (Debian's stress-ng), then the count
# of tests that failed in any run: a test that fails only on a busy machine races the clock. It must be 0.
# Usage: bench/flakes.sh [RUNS] [CPUS] [pytest args...]; each run is bounded by RUN_LIMIT seconds (default 3600).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cpus=${2:-2}
shift $(($# > 2 ? 2 : $#))
limit=${RUN_LIMIT:-3600}
command -v stress-ng >/dev/null || { echo "stress-ng is missing: apt-get install -y stress-ng" >&2; exit 2; }
logs=$(mktemp -d)
stress-ng --cpu "$cpus" --timeout $((runs * limit))s --quiet &
load=$!
trap 'kill "$load" 2>/dev/null; wait "$load" 2>/dev/null' EXIT
unfinished=0
for run in $(seq 1 "$runs"); do
  timeout "$limit" .venv/bin/python -m pytest -p no:cacheprovider -q -rfE "$@" >"$logs/run$run.log" 2>&1
  status=$?
  failed=$(grep -cE '^(FAILED|ERROR) ' "$logs/run$run.log")
  echo "run $run of $runs: exit $status, $failed failed; $(tail -n 1 "$logs/run$run.log")"
  if [ "$status" -eq 124 ]; then
    echo "run $run did not finish within $limit s"
    unfinished=$((unfinished + 1))
  fi
done
flakes=$(cat "$logs"/run*.log | grep -E '^(FAILED|ERROR) ' | sed -E 's/ - .*//' | sort | uniq -c | sort -rn)
count=$(printf '%s' "$flakes" | grep -c . || true)
echo "flakes: $count distinct failing tests across $runs runs beside stress-ng --cpu $cpus, $unfinished runs unfinished (logs in $logs)"
[ -n "$flakes" ] && echo "$flakes"
[ "$count" -eq 0 ] && [ "$unfinished" -eq 0 ]
