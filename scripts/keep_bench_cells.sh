#!/bin/sh
# Keep the small files of every finished cell of one or more bench runs (no weights), laid out as the bench writes
# them, so a bench started on another machine skips those cells (docs/results/real-svamp/README.md); the run's base
# rows' cache (eval/base/) goes beside DEST, into DEST/../eval/base/.
#   sh scripts/keep_bench_cells.sh DEST AS RUN [RUN...]
#   e.g. sh scripts/keep_bench_cells.sh docs/results/real-svamp/bench runs/real-svamp runs/real-svamp runs/real-svamp-q
# AS is the run dir the cells will be restored into: the weights' paths in each eval/metrics.json are rewritten to it.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 DEST AS RUN [RUN...]" >&2; exit 2; }
dest=$1; as=${2%/}; shift 2
base=$(dirname "$dest")/eval/base
for run in "$@"; do
  run=${run%/}
  pat=$(printf '%s' "$run" | sed 's/[].[*^$#\\]/\\&/g')  # the run dir as a literal sed pattern
  find "$run/bench" -path '*/seed*/stages/bench.json' | sort | while read -r stamp; do
    cell=${stamp%/stages/bench.json}; rel=${cell#"$run"/bench/}; out=$dest/$rel
    mkdir -p "$out/stages" "$out/eval" "$out/logs"
    cp "$cell/config.yaml" "$out/"; cp "$stamp" "$out/stages/"
    cp "$cell/eval/metrics.json" "$cell/eval/outputs.jsonl" "$out/eval/"
    for f in train_summary.json compact_weights.jsonl routing_rates.jsonl; do
      if [ -f "$cell/logs/$f" ]; then cp "$cell/logs/$f" "$out/logs/"; fi
    done
    sed -i "s#\"$pat/bench/#\"$as/bench/#g" "$out/eval/metrics.json"
    echo "kept $rel"
  done
  # the base rows' eval cache (a pretrained student's base is evaluated once per run, keyed by what it depends on)
  if [ -d "$run/eval/base" ]; then
    mkdir -p "$base"; cp "$run"/eval/base/* "$base/"; echo "kept eval/base"
  fi
done
