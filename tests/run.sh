#!/usr/bin/env bash
# Runs every test liyu has, on a fresh machine with only the Rust toolchain: whatever else the tests
# need is installed here when it is missing.
#
#   tests/run.sh            the normal suite (formatting, lints, unit and integration tests)
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --release --quiet
