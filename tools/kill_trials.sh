#!/usr/bin/env bash
# Repeat the kill -9 resume test with N kill seeds and count the outcomes (docs/reliability.md).
#   bash tools/kill_trials.sh 5        # seeds 1..5, both modes
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
report=$(mktemp /tmp/palm_kill_trials.XXXXXX)
for seed in $(seq 1 "$runs"); do
  PALM_KILL_SEED=$seed PALM_KILL_REPORT=$report python -m pytest -q -p no:cacheprovider \
    tests/test_reliability.py -k kill_9 >/dev/null || echo "seed $seed: a run failed (see PALM_KILL_SEED=$seed)"
done
python - "$report" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
kills = sum(r["kills"] for r in rows)
same = sum(r["bit_identical"] for r in rows)
print(f"{len(rows)} interrupted runs, {kills} SIGKILLs in all, {same} of {len(rows)} ended bit-identical")
for mode in sorted({r["mode"] for r in rows}):
    part = [r for r in rows if r["mode"] == mode]
    print(f"  {mode}: {len(part)} runs, {sum(r['kills'] for r in part)} kills, "
          f"{sum(r['bit_identical'] for r in part)} bit-identical")
PY
