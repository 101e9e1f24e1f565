#!/usr/bin/env bash
# Runs every test liyu has, on a fresh machine with only the Rust toolchain: whatever else the tests
# need is installed here when it is missing.
#
#   tests/run.sh              the normal suite (formatting, lints, unit and integration tests, a
#                             30-second soak): well under 20 minutes
#   tests/run.sh --extended   the normal suite, then the long tests: the 10-minute soak (2,000
#                             messages/s over 500 connections) and each fuzz target for a bounded
#                             time (LIYU_FUZZ_SECS, default 120 s a target). LIYU_EXTENDED=1 does the same.
set -euo pipefail
cd "$(dirname "$0")/.."

extended=${LIYU_EXTENDED:-0}
for arg in "$@"; do
    case $arg in
        --extended) extended=1 ;;
        *) echo "usage: tests/run.sh [--extended]" >&2; exit 2 ;;
    esac
done

need() { command -v "$1" >/dev/null 2>&1; }

# The score script of ../shared/eval is run by the tests.
if ! need python3; then
    apt-get update -qq && apt-get install -y -qq python3 >/dev/null
fi
# The third-party WebSocket peers of tests/thirdparty.rs are Python's `websockets`.
python3 -c "import websockets" 2>/dev/null || python3 -m pip install --quiet websockets

# The dashboard's browser test (tests/browser.rs) drives Debian's headless Chromium through
# chromedriver; a CJK font makes the Chinese of its screenshots (doc/screenshots/) readable.
browser_pkgs=()
[ -x /usr/bin/chromium ] || browser_pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || browser_pkgs+=(chromium-driver)
{ need fc-list && [ -n "$(fc-list :lang=zh family 2>/dev/null)" ]; } || browser_pkgs+=(fonts-wqy-microhei)
if [ ${#browser_pkgs[@]} -gt 0 ]; then
    echo "== installing ${browser_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${browser_pkgs[@]}" >/dev/null
fi

# The store tests (tests/store.rs) run against a real PostgreSQL server: unless LIYU_TEST_POSTGRES
# already names one, a throwaway cluster is started on a free port of 127.0.0.1 (trust auth, user liyu,
# database liyu_test) and removed on exit.
if [ -z "${LIYU_TEST_POSTGRES:-}" ]; then
    # The directory holding initdb and pg_ctl (PATH first, then Debian's versioned directories).
    pg_bindir() {
        local d found
        found=$(command -v initdb 2>/dev/null || true)
        for d in ${found:+"$(dirname "$(readlink -f "$found")")"} \
            $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
            if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
                echo "$d"
                return 0
            fi
        done
        return 1
    }
    if ! pg_bin=$(pg_bindir); then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        pg_bin=$(pg_bindir)
    fi
    # A free port, so a server left running by someone else cannot get in the way.
    pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/liyu-pg.XXXXXX")
    # PostgreSQL refuses to run as root: as root, run it as `postgres` (or a `liyu` system user).
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
        pg_user=postgres
        if ! id -u postgres >/dev/null 2>&1; then
            pg_user=liyu
            id -u liyu >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin liyu
        fi
        chown "$pg_user" "$pg_dir"
        as_pg=(runuser -u "$pg_user" --)
    fi
    stop_pg() {
        ${as_pg[@]+"${as_pg[@]}"} "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    }
    trap stop_pg EXIT
    echo "== PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
    ${as_pg[@]+"${as_pg[@]}"} "$pg_bin/initdb" -D "$pg_dir/data" -U liyu --auth=trust -E UTF8 --no-locale >/dev/null
    ${as_pg[@]+"${as_pg[@]}"} "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" \
        -o "-p $pg_port -k /tmp -c listen_addresses=127.0.0.1" -w start >/dev/null ||
        { cat "$pg_dir/log" >&2; exit 1; }
    createdb_bin=$pg_bin/createdb
    [ -x "$createdb_bin" ] || createdb_bin=createdb
    "$createdb_bin" -h 127.0.0.1 -p "$pg_port" -U liyu liyu_test
    export LIYU_TEST_POSTGRES="postgres://liyu@127.0.0.1:$pg_port/liyu_test"
fi

# Every test's temporary files (SQLite stores, the served processes' folders, browser profiles) go
# in one folder of this run, removed at the end whatever a test left behind. (After PostgreSQL's
# start: its cluster, run as another user, stays in the system's temporary folder.)
tests_tmp=$(mktemp -d "${TMPDIR:-/tmp}/liyu-tests.XXXXXX")
export TMPDIR=$tests_tmp
on_exit() {
    rm -rf "$tests_tmp"
    if declare -F stop_pg >/dev/null; then stop_pg; fi
}
trap on_exit EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
# The soak measures liyu under a steady load, so it runs on its own, after the rest.
cargo test --release --quiet -- --skip soak::
echo "== soak (LIYU_SOAK_SECS=${LIYU_SOAK_SECS:-30})"
cargo test --release --quiet --test integration soak:: -- --nocapture

if [ "$extended" = 1 ]; then
    echo "== extended: 10-minute soak"
    LIYU_SOAK_SECS=${LIYU_LONG_SOAK_SECS:-600} cargo test --release --quiet --test integration soak:: -- --nocapture

    # cargo-fuzz on the stable toolchain: `-s none`, since AddressSanitizer needs nightly's
    # -Zsanitizer; libFuzzer's coverage instrumentation works on stable. See fuzz/Cargo.toml.
    need cargo-fuzz || cargo install --locked cargo-fuzz
    fuzz_secs=${LIYU_FUZZ_SECS:-120}
    for target in checker codec config lexicon; do
        echo "== extended: fuzzing $target for ${fuzz_secs}s"
        mkdir -p "fuzz/corpus/$target"
        # -timeout: one input taking over 10 s is a hang and fails the run, like a crash.
        log="fuzz/corpus/$target.log"
        if ! cargo fuzz run -s none "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
            -max_total_time="$fuzz_secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
            tail -n 60 "$log" >&2
            echo "fuzzing $target failed: the input is in fuzz/artifacts/$target (copy it to fuzz/seeds/$target)" >&2
            exit 1
        fi
        grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb' "$log" || true
    done
fi
