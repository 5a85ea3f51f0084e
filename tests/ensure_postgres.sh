#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries the test suite starts (initdb, pg_ctl) are installed.
set -euo pipefail

found() {
    if [ -n "${INTENTD_PG_BIN:-}" ] && [ -x "$INTENTD_PG_BIN/initdb" ] && [ -x "$INTENTD_PG_BIN/pg_ctl" ]; then
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then return 0; fi
    done
    return 1
}

found && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing the PostgreSQL server for the tests: apt-get install -y postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
    found && exit 0
fi
echo "make test needs the PostgreSQL server binaries (initdb, pg_ctl): install them" \
    "(Debian: apt-get install -y postgresql) or set INTENTD_PG_BIN to their folder" >&2
exit 1
