#!/usr/bin/env bash
# The main job on real processes: four `machine-mutex run` processes contend
# for one name and take turns; each prints when it holds and releases.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p machine-mutex-cli
bin=target/release/machine-mutex
name="demo-$$"
echo "4 processes run under the mutex '$name' (lock file: ${TMPDIR:-/tmp}/juju-$name):"
for i in 1 2 3 4; do
  "$bin" run "$name" -- sh -c '
    echo "$(date +%T.%3N)  worker '"$i"' (pid $$) holds the lock"
    sleep 0.5
    echo "$(date +%T.%3N)  worker '"$i"' releases"' &
done
wait
echo "Each worker held the lock alone: no 'holds' line comes between another's 'holds' and 'releases'."
