#!/bin/sh
# IoTStack edge installer, served by the OTA host for one gateway.
# Usage (as printed in DownloadCmd):
#   iot_edge_process.sh --install <arch> <version> sh
#   iot_edge_process.sh --config <device-key> <gateway-sn> <device-secret> <console-password>
#   iot_edge_process.sh --start
#   iot_edge_process.sh --report <deployment-id> <processing|success|failed> [log line]
set -eu

SERVER=__SERVER__
REPORT_URL=__REPORT_URL__
DEVICE_KEY=__DEVICE_KEY__
EXPECTED_VERSION=__SOFTWARE_VERSION__
EXPECTED_ARCH=__CPU_ARCH__
PREFIX="${IOT_EDGE_PREFIX:-/opt/iot-edge}"
CONF="$PREFIX/etc/gateway.conf"

die() { echo "iot_edge_process: $*" >&2; exit 1; }

json_escape() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

# Single-quote a value so that sourcing the config file can never run it.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

case "${1:-}" in
--install)
    [ $# -ge 3 ] || die "usage: --install <arch> <version> sh"
    [ "$2" = "$EXPECTED_ARCH" ] || echo "warning: installing $2, configured for $EXPECTED_ARCH" >&2
    [ "$3" = "$EXPECTED_VERSION" ] || echo "warning: installing $3, configured for $EXPECTED_VERSION" >&2
    mkdir -p "$PREFIX/bin" "$PREFIX/etc" "$PREFIX/log"
    printf 'ARCH=%s\nVERSION=%s\nSERVER=%s\n' "$2" "$3" "$SERVER" > "$PREFIX/etc/install.env"
    echo "iot-edge $3 ($2) prepared in $PREFIX"
    ;;
--config)
    [ $# -ge 5 ] || die "usage: --config <device-key> <gateway-sn> <device-secret> <password>"
    [ "$2" = "$DEVICE_KEY" ] || die "this script was issued for device key $DEVICE_KEY"
    mkdir -p "$PREFIX/etc"
    umask 077
    printf 'DEVICE_KEY=%s\nGATEWAY_SN=%s\nDEVICE_SECRET=%s\nCONSOLE_PASSWORD=%s\nREPORT_URL=%s\n' \
        "$(q "$2")" "$(q "$3")" "$(q "$4")" "$(q "$5")" "$(q "$REPORT_URL")" > "$CONF"
    echo "gateway $3 configured"
    ;;
--start)
    [ -f "$CONF" ] || die "run --config first"
    if [ -x "$PREFIX/bin/iot-edge" ]; then
        nohup "$PREFIX/bin/iot-edge" --config "$CONF" >> "$PREFIX/log/iot-edge.log" 2>&1 &
        echo "iot-edge started"
    else
        echo "iot-edge configured; no agent binary in $PREFIX/bin yet"
    fi
    ;;
--report)
    [ $# -ge 3 ] || die "usage: --report <deployment-id> <processing|success|failed> [log]"
    [ -f "$CONF" ] || die "run --config first"
    . "$CONF"
    body=$(printf '{"DeploymentID":%s,"Status":"%s","Log":"%s"}' "$2" "$3" "$(json_escape "${4:-}")")
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -u "$DEVICE_KEY:$DEVICE_SECRET" -H 'Content-Type: application/json' -d "$body" "$REPORT_URL"
    else
        auth=$(printf '%s:%s' "$DEVICE_KEY" "$DEVICE_SECRET" | base64 | tr -d '\n')
        wget -qO- --header="Authorization: Basic $auth" --header='Content-Type: application/json' \
            --post-data="$body" "$REPORT_URL"
    fi
    echo
    ;;
*)
    die "usage: --install | --config | --start | --report"
    ;;
esac
