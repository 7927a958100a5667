#!/bin/sh
# Builds machine-mutex for Windows (x86_64-pc-windows-gnu) with Debian's
# rustc 1.63 and runs the Windows test suite (windows-tests/) under Wine.
#
#   apt-get install rustc cargo libstd-rust-dev-windows gcc-mingw-w64-x86-64 wine64 rust-clippy
#   scripts/windows-test.sh [extra test-harness arguments, e.g. a test name]
#
# Dependencies: windows-tests/Cargo.lock pins versions that build on rustc
# 1.63. Debian's cargo (1.65) cannot fetch them itself, so the current cargo
# on PATH vendors exactly those versions (`cargo vendor --locked`, checksums
# from the lockfile) into target/windows/vendor, once per lockfile; Debian's
# cargo then builds offline from there.
#
# When a tool is missing or Wine cannot start, the script says why and exits
# 0 (skipped), unless MACHINE_MUTEX_REQUIRE_WINDOWS=1: then it fails.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-pc-windows-gnu
work="$root/target/windows"
manifest="$root/windows-tests/Cargo.toml"
lockfile="$root/windows-tests/Cargo.lock"
# Debian's toolchain, by absolute path: the rustc/cargo on PATH may be rustup's.
old_rustc=/usr/bin/rustc
old_cargo=/usr/bin/cargo
old_clippy=/usr/bin/cargo-clippy
new_cargo=${MODERN_CARGO:-$(command -v cargo || echo cargo)}
wine=${WINE:-/usr/lib/wine/wine64}

skip() {
    if [ "${MACHINE_MUTEX_REQUIRE_WINDOWS:-0}" = 1 ]; then
        echo "windows-test: FAILED: $* (MACHINE_MUTEX_REQUIRE_WINDOWS=1)" >&2
        exit 1
    fi
    echo "windows-test: SKIPPED: $*" >&2
    echo "windows-test: (set MACHINE_MUTEX_REQUIRE_WINDOWS=1 to make this a failure)" >&2
    exit 0
}

need() {
    [ -x "$1" ] || command -v "$1" >/dev/null 2>&1 || skip "$1 not found ($2)"
}

need "$old_rustc" "apt-get install rustc"
need "$old_cargo" "apt-get install cargo"
[ -d "/usr/lib/rustlib/$target/lib" ] || skip "no Rust std for $target (apt-get install libstd-rust-dev-windows)"
need x86_64-w64-mingw32-gcc "apt-get install gcc-mingw-w64-x86-64"
need "$wine" "apt-get install wine64"
need "$new_cargo" "a current cargo, to vendor the dependencies"
echo "windows-test: $("$old_rustc" --version), $("$old_cargo" --version), $("$wine" --version 2>/dev/null || echo wine)"

# 1. Vendor the pinned dependencies (skipped when already done for this lockfile).
mkdir -p "$work"
stamp="$work/vendor.lock"
if ! cmp -s "$lockfile" "$stamp" 2>/dev/null; then
    echo "windows-test: vendoring the dependencies of windows-tests/Cargo.lock"
    rm -rf "$work/vendor"
    if ! "$new_cargo" vendor --locked --manifest-path "$manifest" "$work/vendor" \
        >/dev/null 2>"$work/vendor.log"; then
        tail -n 20 "$work/vendor.log" >&2
        rm -rf "$work/vendor"
        skip "cannot vendor the dependencies (is the package registry reachable?)"
    fi
    cp "$lockfile" "$stamp"
fi

# 2. A private CARGO_HOME for Debian's cargo: vendored sources, mingw linker, Wine runner.
export CARGO_HOME="$work/cargo-home"
mkdir -p "$CARGO_HOME"
cat >"$CARGO_HOME/config.toml" <<CONFIG
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "$work/vendor"

[target.$target]
linker = "x86_64-w64-mingw32-gcc"
runner = ["$wine"]
CONFIG
export RUSTC="$old_rustc" RUSTDOC=/usr/bin/rustdoc
# /usr/bin first, so that cargo's subcommands (cargo-clippy, clippy-driver) are Debian's too.
export PATH="/usr/bin:$PATH"
# Warnings are errors in this crate and the tests (dependencies are capped by cargo).
export RUSTFLAGS="-D warnings"
cargo_old() {
    subcommand=$1
    shift
    "$old_cargo" "$subcommand" --offline --locked --target "$target" \
        --manifest-path "$manifest" --target-dir "$work/build" "$@"
}

# 3. Formatting of the Windows test crate (not a member of the main workspace,
# so `cargo fmt --all` there does not see it), with the current toolchain.
if "$new_cargo" fmt --version >/dev/null 2>&1; then
    "$new_cargo" fmt --manifest-path "$manifest" --check
fi

# 4. Build the library and the tests with rustc 1.63 (this is the Windows MSRV check).
echo "windows-test: building for $target"
cargo_old build
cargo_old test --no-run
RUSTDOCFLAGS="-D warnings" cargo_old doc --no-deps -p machine-mutex
# The same lockfile also checks that the library builds on Linux with rustc 1.63.
"$old_cargo" build --offline --locked --manifest-path "$manifest" --target-dir "$work/build-host"
if [ -x "$old_clippy" ]; then
    echo "windows-test: clippy (Debian's, 1.63) on the Windows code"
    cargo_old clippy --all-targets -- -D warnings
else
    echo "windows-test: note: $old_clippy not found (apt-get install rust-clippy): Windows code not linted"
fi

# 5. A fresh Wine prefix for this run; its wineserver is stopped at the end.
export WINEDEBUG=-all
# Wine's stack walker crashes while printing the backtrace of a panicking test:
# keep backtraces off so that a failing test reports as a failure.
export RUST_BACKTRACE=0
# No Mono or Gecko installer prompts in a new prefix: the tests need neither.
export WINEDLLOVERRIDES="mscoree,mshtml="
WINEPREFIX=$(mktemp -d "${TMPDIR:-/tmp}/machine-mutex-wine.XXXXXX")
export WINEPREFIX
cleanup() {
    wineserver=$(dirname "$wine")/wineserver
    [ -x "$wineserver" ] || wineserver=wineserver
    "$wineserver" -k >/dev/null 2>&1 || true
    rm -rf "$WINEPREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "windows-test: starting Wine (a new prefix takes a while)"
if ! "$wine" cmd /c exit 0 >"$work/wine-start.log" 2>&1; then
    tail -n 20 "$work/wine-start.log" >&2 || true
    skip "Wine cannot start ($wine cmd /c exit 0 failed; log above)"
fi

# 6. The Windows suite, under Wine. Besides the exit status, the log must show
# both test binaries passing and no crash inside Wine (a child's included).
echo "windows-test: running the Windows tests under Wine"
rm -f "$work/test.rc"
{ cargo_old test -- "$@" 2>&1 || echo "$?" >"$work/test.rc"; } | tee "$work/test.log"
if [ -e "$work/test.rc" ]; then
    echo "windows-test: FAILED: the Windows tests failed (exit status $(cat "$work/test.rc"))" >&2
    exit 1
fi
if grep -q "Unhandled exception" "$work/test.log"; then
    echo "windows-test: FAILED: a process crashed under Wine (see the log above)" >&2
    exit 1
fi
if [ "$(grep -c '^test result: ok\.' "$work/test.log")" -lt 2 ]; then
    echo "windows-test: FAILED: no test summary from the Windows test binaries" >&2
    exit 1
fi
echo "windows-test: OK"
