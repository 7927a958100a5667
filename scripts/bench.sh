#!/usr/bin/env bash
# The benchmark report: machine-mutex side by side with its peers, in one run.
#
#   bash scripts/bench.sh           # full run: rewrites BENCHMARKS.md and docs/benchmarks/*.svg
#   bash scripts/bench.sh --smoke   # tiny counts, a few seconds, into target/tmp/bench-smoke/ (CI)
#
# Installs the peers first: Go and juju/mutex from Debian (scripts/install-interop-deps.sh),
# and Python's filelock into a virtual environment under target/. A peer that cannot be
# installed is skipped, with the reason printed here and in the report. Other arguments are
# passed to the harness (benches/report): --only FAMILY,... --out DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! bash scripts/install-interop-deps.sh; then
    echo "bench: could not install Go and juju/mutex; the report skips the Go peer" >&2
fi

venv=target/bench-venv
python=""
if ! command -v python3 >/dev/null; then
    echo "bench: python3 not found; the report skips Python filelock" >&2
elif [[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import filelock' 2>/dev/null; then
    python=$venv/bin/python
elif python3 -m venv "$venv" >/dev/null \
    && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check filelock; then
    python=$venv/bin/python
else
    echo "bench: could not create a virtual environment with filelock in $venv;" \
        "the report skips Python filelock" >&2
fi

exec cargo bench --bench report -- --python "$python" "$@"
