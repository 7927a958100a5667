#!/usr/bin/env bash
# The main job on real processes: four `machine-mutex run` processes contend
# for one name and take turns; each prints when it holds and releases.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p machine-mutex-cli
# Where cargo put it (CARGO_TARGET_DIR or a configured target directory).
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="${target_dir:-target}/release/machine-mutex"
if [ ! -x "$bin" ]; then
  echo "demo: $bin was not built" >&2
  exit 1
fi
name="demo-$$"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "4 processes run under the mutex '$name' (lock file: ${TMPDIR:-/tmp}/juju-$name):"
pids=()
for i in 1 2 3 4; do
  # Each line also goes to the log from inside the critical section.
  DEMO_LOG="$log" "$bin" run "$name" -- sh -c '
    echo "$(date +%T.%3N)  worker '"$i"' (pid $$) holds the lock" | tee -a "$DEMO_LOG"
    sleep 0.5
    echo "$(date +%T.%3N)  worker '"$i"' releases" | tee -a "$DEMO_LOG"' &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=$((failed + 1))
done
if [ "$failed" -gt 0 ]; then
  echo "demo: $failed of 4 workers failed" >&2
  exit 1
fi
# Checked, not assumed: each "holds" line is followed by the same worker's
# "releases", and every worker had its turn.
if ! awk '/holds the lock/ { if (held != "") bad = 1; held = $3 }
          /releases/       { if (held != $3) bad = 1; held = ""; turns++ }
          END              { exit (bad || turns != 4) }' "$log"; then
  echo "demo: the workers' turns overlapped (see the lines above)" >&2
  exit 1
fi
echo "Each worker held the lock alone: no 'holds' line came between another's 'holds' and 'releases' (checked)."
