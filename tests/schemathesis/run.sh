#!/usr/bin/env bash
# Fuzzes the admin API against its own OpenAPI document with schemathesis: every documented
# operation gets generated requests (valid and invalid), and every answer must be one the
# document declares, in the declared shape. Starts a release-built server on a free loopback
# port with a throwaway data directory, and exits with schemathesis's status.
#
#   tests/schemathesis/run.sh                 # 25 examples per operation
#   SCHEMATHESIS_MAX_EXAMPLES=100 tests/schemathesis/run.sh
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (25), SCHEMATHESIS_SEED (random), OTA_HOST_BIN
# (target/release/ota-host, built when missing), OTA_HOST_LOG (a file to keep the server's
# log in; RUST_LOG=info logs every request). Extra arguments go to `schemathesis run`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="4.32.5"
venv="$root/target/schemathesis-venv"
examples="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
bin="${OTA_HOST_BIN:-$root/target/release/ota-host}"

# schemathesis, pinned, in a venv of its own (never the system's site-packages).
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != *"$version"* ]]; then
    command -v python3 >/dev/null || { echo "run.sh: python3 is required" >&2; exit 1; }
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi

if [[ ! -x "$bin" ]]; then
    (cd "$root" && cargo build --release --workspace --all-targets)
fi

work="$(mktemp -d)"
server=""
cleanup() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [[ -n "${OTA_HOST_LOG:-}" ]]; then
        cp "$work/stderr" "$OTA_HOST_LOG" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

key="schemathesis-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$work/ota.toml" <<TOML
[[tenants]]
name = "acme"
products = [{ sn = "fqhmuglv1fybql33", name = "Edge gateway" }]

[[operator-keys]]
name = "ops"
key = "$key"
TOML

# shellcheck source=../support/serve.sh
source "$here/../support/serve.sh"
start_server
echo "run.sh: server at $base, $examples examples per operation"

st() {
    (cd "$work" && "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" \
        run "$base/admin/api/openapi.json" \
        --url "$base" \
        --checks all \
        --header "Authorization: Bearer $key" \
        --max-examples "$examples" \
        --generation-database none \
        --generation-with-security-parameters false \
        ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} \
        --no-color \
        "$@")
}

# Revoking API keys goes last, on its own: a fuzzed id may well be the key this run uses,
# and every later request would then only be refused. Alone, it has no links to follow, so
# no stateful phase.
revoke='DELETE /admin/api/v1/api-keys/{id}'
status=0
st --exclude-name "$revoke" "$@" || status=$?
second=0
st --include-name "$revoke" --phases examples,coverage,fuzzing "$@" || second=$?
[[ $status -ne 0 ]] || status=$second

if [[ $status -ne 0 ]]; then
    echo "run.sh: schemathesis failed ($status); server errors logged:" >&2
    grep -i "error" "$work/stderr" | tail -n 40 >&2 || true
fi
exit "$status"
