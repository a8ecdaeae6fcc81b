#!/usr/bin/env bash
# Drives the OSS-compatible endpoint with Aliyun's own Python SDK, `oss2`, unmodified: a
# browser-style PostObject upload to the `host` MXChip's /oss_token/ota/ names (the OSS
# listener, `blobs.oss-listen`), then oss2's get_object (with its CRC-64 check), HEAD,
# get_object_meta, a Range read and a multi-threaded resumable download. Starts a
# release-built server on free loopback ports with a throwaway data directory.
#
#   tests/oss2/run.sh
#
# Environment: OTA_HOST_BIN (target/release/ota-host, built when missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="2.19.1"
venv="$root/target/oss2-venv"
bin="${OTA_HOST_BIN:-$root/target/release/ota-host}"

# oss2, pinned, in a venv of its own (never the system's site-packages).
if ! "$venv/bin/python" -c "import oss2, sys; sys.exit(oss2.__version__ != '$version')" 2>/dev/null; then
    command -v python3 >/dev/null || { echo "run.sh: python3 is required" >&2; exit 1; }
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "oss2==$version"
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
    rm -rf "$work"
}
trap cleanup EXIT

token="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$work/ota.toml" <<TOML
[blobs]
oss-listen = "127.0.0.1:0"

[[tenants]]
name = "acme"
products = [{ sn = "test", name = "Anxin plug" }]
api-keys = [{ name = "mxchip-console", key = "$token" }]
TOML

# shellcheck source=../support/serve.sh
source "$here/../support/serve.sh"
start_server
echo "run.sh: server at $base"

cd "$work"
"$venv/bin/python" "$here/client.py" "$base" "$token"
if grep -q "ERROR" "$work/stderr"; then
    echo "run.sh: the server logged an error:" >&2
    cat "$work/stderr" >&2
    exit 1
fi
