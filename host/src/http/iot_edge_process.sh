#!/bin/sh
# IoTStack edge installer and agent, served by the OTA host for one gateway.
#
# DownloadCmd runs, in this order:
#   iot_edge_process.sh --install <arch> <version> [sh]
#       download that release of the product for that CPU architecture from the host,
#       verify its SHA-256, unpack it and make it current (the one before is kept)
#   iot_edge_process.sh --config <product-sn> <gateway-sn> <device-secret> <console-password>
#       store the gateway's credentials (mode 600) and check them with the host
#   iot_edge_process.sh --start
#       start the agent: under systemd when systemd runs this machine and we are root,
#       else as a background process with a pid file
# Then, on the gateway:
#   --status | --stop | --rollback
#   --report <deployment-id> <processing|success|failed> [log text]   report by hand
#   --agent   run the agent in the foreground (what --start runs)
#
# The agent asks the host every IOT_EDGE_POLL_SECS (30) for the gateway's next deployment,
# installs its release as --install does, restarts the edge service and reports progress,
# rolling back when the new version does not stay up. A release is a tar archive (gzip or
# not); when it holds an executable bin/iot-edge, the agent runs that as the edge service
# (restarting it when it exits) with IOT_EDGE_CONFIG naming the gateway's config file.
#
# Layout under IOT_EDGE_PREFIX (/opt/iot-edge): bin/ (this script), etc/gateway.conf,
# versions/<version>/, current and previous (links into versions/), run/*.pid, run/pending/
# (final reports the host has not taken yet), log/.
# Other settings: IOT_EDGE_INIT=auto|systemd|process, IOT_EDGE_HEALTH_SECS (5): how long a
# new version must stay up before its deployment counts as a success.
set -eu
# Whatever umask the caller has, nothing this script creates is writable by others.
umask 022

SERVER=__SERVER__
REPORT_URL=__REPORT_URL__
POLL_URL=__POLL_URL__
DEVICE_KEY=__DEVICE_KEY__
PRODUCT_SN=__PRODUCT_SN__
GATEWAY_SN=__GATEWAY_SN__
EXPECTED_VERSION=__SOFTWARE_VERSION__
ARCH=__CPU_ARCH__

PREFIX="${IOT_EDGE_PREFIX:-/opt/iot-edge}"
CONF="$PREFIX/etc/gateway.conf"
RUN="$PREFIX/run"
LOGS="$PREFIX/log"
TMP="$PREFIX/tmp"
SELF="$PREFIX/bin/iot_edge_process.sh"
POLL_SECS="${IOT_EDGE_POLL_SECS:-30}"
HEALTH_SECS="${IOT_EDGE_HEALTH_SECS:-5}"
UNIT=/etc/systemd/system/iot-edge.service

die() { echo "iot_edge_process: $*" >&2; exit 1; }
say() { echo "iot_edge_process: $*"; }
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
nap() { sleep "$1" 2>/dev/null || sleep 1; }

# The files this script installs run as root; over plain http their checksums come by the
# same unprotected path, so anyone who can alter the traffic can replace them.
warn_plain_http() {
    case "$SERVER" in
    http://*) echo "warning: $SERVER is plain http: whoever can alter this traffic can replace the software this gateway runs as root; serve the OTA host over https" >&2 ;;
    esac
}

# The text as the inside of a JSON string: backslash, quote and every control character
# escaped (tabs, CR and LF included), and bytes that are not UTF-8 replaced by U+FFFD, so any
# log line (a crashing service's binary output too) makes a valid report.
json_escape() {
    printf '%s' "$1" | LC_ALL=C awk '
        BEGIN {
            for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i
            for (i = 1; i < 32; i++) ctl[sprintf("%c", i)] = sprintf("\\u%04x", i)
        }
        {
            if (NR > 1) printf "\\n"
            n = length($0)
            for (i = 1; i <= n; i++) {
                c = substr($0, i, 1)
                b = ord[c]
                if (b < 128) {
                    if (c == "\\") printf "\\\\"
                    else if (c == "\"") printf "\\\""
                    else if (c == "\t") printf "\\t"
                    else if (c == "\r") printf "\\r"
                    else if (c in ctl) printf "%s", ctl[c]
                    else printf "%s", c
                    continue
                }
                # A UTF-8 sequence: lead byte, continuation bytes, no overlong form, no
                # surrogate, nothing past U+10FFFF.
                need = b >= 194 && b <= 223 ? 1 : b >= 224 && b <= 239 ? 2 : b >= 240 && b <= 244 ? 3 : 0
                ok = need > 0 && i + need <= n
                for (k = 1; ok && k <= need; k++) {
                    cb = ord[substr($0, i + k, 1)]
                    if (cb < 128 || cb > 191) ok = 0
                }
                if (ok) {
                    b2 = ord[substr($0, i + 1, 1)]
                    if ((b == 224 && b2 < 160) || (b == 237 && b2 > 159) || (b == 240 && b2 < 144) || (b == 244 && b2 > 143)) ok = 0
                }
                if (ok) {
                    printf "%s", substr($0, i, need + 1)
                    i += need
                } else printf "\\ufffd"
            }
        }'
}

# The value of a field of the host's flat JSON answer: a string without escapes, a number
# or a boolean; empty when absent. (Escaped quotes inside other strings never match.)
json_field() {
    printf '%s' "$1" | tr -d '\n' | sed -n \
        -e "s/.*\"$2\":\"\\([^\"\\\\]*\\)\".*/\\1/p" -e t \
        -e "s/.*\"$2\":\\([-0-9.a-z]*\\).*/\\1/p"
}

# Single-quote a value so that sourcing the config file can never run it.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# HTTP with curl, else wget (GNU or BusyBox). Every call gives up on a host that stops
# answering: 10 s to connect, 30 s for an API call, a download stalled for 60 s. Each helper
# prints the HTTP status; 000 means the host was not reached.
WGET_GNU=
if ! have curl && wget --version 2>/dev/null | grep -q 'GNU Wget'; then WGET_GNU=1; fi

# wget prints the status line with -S (on stderr); the last one counts after redirects.
wget_status() {
    ws_code=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$1" | tail -n 1)
    echo "${ws_code:-000}"
}

# GET $1 into the file $2.
http_get() {
    rm -f "$2"
    if have curl; then
        hg_code=$(curl -sSL --connect-timeout 10 --speed-limit 1 --speed-time 60 \
            -o "$2" -w '%{http_code}' "$1") || hg_code=000
    else
        wget -S -q -T 60 ${WGET_GNU:+-t 1 --content-on-error} -O "$2" "$1" 2>"$TMP/wget.hdr" || true
        hg_code=$(wget_status "$TMP/wget.hdr")
    fi
    echo "$hg_code"
}

# POST the JSON $2 to $1 with the gateway's credentials, the answer into the file $3. The
# credentials never show in `ps`: curl reads them from stdin, GNU wget from a private
# wgetrc; only BusyBox wget takes them as an argument.
http_post() {
    rm -f "$3"
    (umask 077 && printf '%s' "$2" >"$TMP/body.json")
    if have curl; then
        hp_code=$(printf 'user = "%s:%s"\n' "$DEVICE_KEY" "$DEVICE_SECRET" |
            curl -sS -K - --connect-timeout 10 --max-time 30 -o "$3" -w '%{http_code}' \
                -H 'Content-Type: application/json' --data-binary "@$TMP/body.json" "$1") ||
            hp_code=000
    else
        hp_auth=$(printf '%s:%s' "$DEVICE_KEY" "$DEVICE_SECRET" | base64 | tr -d '\n')
        if [ -n "$WGET_GNU" ]; then
            (umask 077 && printf 'header = Authorization: Basic %s\n' "$hp_auth" >"$TMP/wgetrc")
            WGETRC="$TMP/wgetrc" wget -S -q -T 30 -t 1 --content-on-error -O "$3" \
                --header='Content-Type: application/json' --post-file="$TMP/body.json" \
                "$1" 2>"$TMP/wget.hdr" || true
        else
            wget -S -q -T 30 -O "$3" --header="Authorization: Basic $hp_auth" \
                --header='Content-Type: application/json' --post-file="$TMP/body.json" \
                "$1" 2>"$TMP/wget.hdr" || true
        fi
        hp_code=$(wget_status "$TMP/wget.hdr")
    fi
    rm -f "$TMP/body.json"
    echo "$hp_code"
}

sha256_of() {
    if have sha256sum; then sha256sum "$1" | cut -d' ' -f1
    elif have shasum; then shasum -a 256 "$1" | cut -d' ' -f1
    else openssl dgst -sha256 -r "$1" | cut -d' ' -f1
    fi
}

md5_of() {
    if have md5sum; then md5sum "$1" | cut -d' ' -f1
    else openssl dgst -md5 -r "$1" | cut -d' ' -f1
    fi
}

load_config() {
    [ -f "$CONF" ] || die "run --config first"
    # shellcheck source=/dev/null
    . "$CONF"
}

# A version that is safe as a folder name.
safe_version() {
    case "$1" in
    '' | .* | *[!A-Za-z0-9._+-]*) return 1 ;;
    esac
}

version_of() { [ -L "$PREFIX/$1" ] && basename "$(readlink "$PREFIX/$1")"; }

# Point the link $1 (current or previous) at versions/$2 (-n: replace the link itself, never
# create one inside the folder it points at).
relink() { ln -sfn "versions/$2" "$PREFIX/$1"; }

# Keep only the current and the previous version on disk, and the one the service runs
# (with KeepLocal it may be older than both).
prune() {
    pr_cur=$(version_of current || true)
    pr_prev=$(version_of previous || true)
    pr_run=
    pid_in service >/dev/null && pr_run=$(cat "$RUN/service.version" 2>/dev/null || true)
    for pr_dir in "$PREFIX"/versions/*; do
        [ -d "$pr_dir" ] || continue
        pr_name=$(basename "$pr_dir")
        case "$pr_name" in "$pr_cur" | "$pr_prev" | "$pr_run") continue ;; esac
        rm -rf "$pr_dir"
    done
    for pr_sum in "$PREFIX"/versions/.*.sum; do
        [ -f "$pr_sum" ] || continue
        pr_name=${pr_sum##*/.}
        [ -d "$PREFIX/versions/${pr_name%.sum}" ] || rm -f "$pr_sum"
    done
}

# install_package VERSION URL SHA256 MD5: download, verify, unpack into versions/VERSION and
# make it current, the version before becoming previous. Prints what it does; on failure
# returns non-zero with current untouched. The current version installed again from the same
# file is left as it is (ip_changed stays empty): its folder may be what the service runs from.
install_package() {
    ip_ver=$1 ip_url=$2 ip_sha=$3 ip_md5=$4 ip_changed=
    safe_version "$ip_ver" || { echo "refusing unsafe version name '$ip_ver'"; return 1; }
    mkdir -p "$PREFIX/versions" "$TMP"
    ip_sum="$PREFIX/versions/.$ip_ver.sum"
    if [ "$(version_of current || true)" = "$ip_ver" ] && [ -d "$PREFIX/versions/$ip_ver" ] &&
        [ "$(cat "$ip_sum" 2>/dev/null || true)" = "${ip_sha:-$ip_md5}" ]; then
        echo "$ip_ver is already installed and current (${ip_sha:-$ip_md5})"
        return 0
    fi
    ip_pkg="$TMP/package.$$"
    rm -f "$ip_pkg"
    echo "downloading $ip_ver from $ip_url"
    ip_code=$(http_get "$ip_url" "$ip_pkg")
    if [ "$ip_code" != 200 ]; then
        echo "download failed (HTTP $ip_code)"
        rm -f "$ip_pkg"
        return 1
    fi
    if [ -n "$ip_sha" ]; then
        ip_got=$(sha256_of "$ip_pkg")
        ip_want=$ip_sha ip_what=SHA-256
    else
        ip_got=$(md5_of "$ip_pkg")
        ip_want=$ip_md5 ip_what=MD5
    fi
    if [ "$ip_got" != "$ip_want" ]; then
        echo "$ip_what mismatch: expected $ip_want, got $ip_got; nothing installed"
        rm -f "$ip_pkg"
        return 1
    fi
    echo "$ip_what $ip_got verified"
    ip_stage="$PREFIX/versions/.$ip_ver.new"
    rm -rf "$ip_stage"
    mkdir -p "$ip_stage"
    ip_z=
    [ "$(od -An -tx1 -N2 "$ip_pkg" | tr -d ' \n')" = 1f8b ] && ip_z=-z
    # -o: files belong to whoever installs (root), never to the archive's recorded owners;
    # then nothing is writable by others or set-id, so a package cannot plant a file another
    # user could change before root runs it.
    if ! ip_out=$(tar -x -o $ip_z -f "$ip_pkg" -C "$ip_stage" 2>&1) ||
        ! ip_out=$(chmod -R go-w,ug-s "$ip_stage" 2>&1); then
        echo "unpacking failed: $ip_out"
        rm -rf "$ip_stage" "$ip_pkg"
        return 1
    fi
    rm -f "$ip_pkg"
    ip_old=$(version_of current || true)
    if [ "$ip_old" = "$ip_ver" ]; then
        ip_old=$(version_of previous || true)
    fi
    # The folder being replaced is renamed away, never emptied in place.
    ip_gone="$PREFIX/versions/.$ip_ver.old.$$"
    [ -d "$PREFIX/versions/$ip_ver" ] && mv "$PREFIX/versions/$ip_ver" "$ip_gone"
    mv "$ip_stage" "$PREFIX/versions/$ip_ver"
    echo "${ip_sha:-$ip_md5}" >"$ip_sum"
    [ -n "$ip_old" ] && [ -d "$PREFIX/versions/$ip_old" ] && relink previous "$ip_old"
    relink current "$ip_ver"
    rm -rf "$ip_gone"
    prune
    ip_changed=1
    echo "installed $ip_ver in $PREFIX/versions/$ip_ver${ip_old:+ (previous: $ip_old)}"
}

# A process's start time (from /proc, where there is one): with its pid in a pid file, so a
# stale file naming a reused pid (after a reboot) is never taken for our process.
proc_start() { [ -r "/proc/$1/stat" ] && sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f20; }
write_pid() {
    echo "$2 $(proc_start "$2" || true)" >"$RUN/$1.pid.$$"
    mv -f "$RUN/$1.pid.$$" "$RUN/$1.pid"
}

# Remove the pid file $1 only while it names the process $2: an agent stopping late must not
# remove the file of the agent that replaced it.
drop_pid() {
    dr_pid=''
    [ -f "$RUN/$1.pid" ] && read -r dr_pid _ <"$RUN/$1.pid"
    [ "$dr_pid" = "$2" ] && rm -f "$RUN/$1.pid"
    return 0
}

# The pid of our running agent or service, from its pid file; fails when it is not running.
pid_in() {
    [ -f "$RUN/$1.pid" ] || return 1
    pi_pid='' pi_start=''
    read -r pi_pid pi_start <"$RUN/$1.pid" || true
    case "$pi_pid" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$pi_pid" 2>/dev/null || return 1
    if [ -n "$pi_start" ] && [ -r "/proc/$pi_pid/stat" ]; then
        [ "$(proc_start "$pi_pid")" = "$pi_start" ] || return 1
    fi
    echo "$pi_pid"
}

# One changer of the service and the links at a time (the agent, --install, --rollback,
# --start, --stop). The lock is a symbolic link to the holder's pid: made atomically, pid
# included, so it is never seen without its holder. A lock whose holder died is taken over by
# one waiter at a time (run/changer.takeover), and only while it still names the dead holder.
# After a minute of waiting, give up.
lock() {
    mkdir -p "$RUN"
    lk_i=0 lk_t=0
    until ln -s "$$" "$RUN/changer" 2>/dev/null; do
        lk_pid=$(readlink "$RUN/changer" 2>/dev/null || true)
        if [ -n "$lk_pid" ] && ! kill -0 "$lk_pid" 2>/dev/null; then
            if mkdir "$RUN/changer.takeover" 2>/dev/null; then
                [ "$(readlink "$RUN/changer" 2>/dev/null || true)" = "$lk_pid" ] && rm -f "$RUN/changer"
                rmdir "$RUN/changer.takeover"
                continue
            fi
            # A waiter that died between those two lines left the takeover behind.
            lk_t=$((lk_t + 1))
            [ $lk_t -lt 50 ] || { rmdir "$RUN/changer.takeover" 2>/dev/null || true; lk_t=0; }
        fi
        lk_i=$((lk_i + 1))
        [ $lk_i -lt 600 ] || return 1
        nap 0.1
    done
}
unlock() {
    [ "$(readlink "$RUN/changer" 2>/dev/null || true)" = "$$" ] && rm -f "$RUN/changer"
    return 0
}

# Start the current version's edge service, if it has one and it is not running.
start_service() {
    ss_bin="$PREFIX/current/bin/iot-edge"
    [ -x "$ss_bin" ] || return 0
    pid_in service >/dev/null && return 0
    mkdir -p "$RUN" "$LOGS"
    (
        cd "$PREFIX/current" &&
            IOT_EDGE_CONFIG="$CONF" IOT_EDGE_PREFIX="$PREFIX" \
                IOT_EDGE_VERSION="$(version_of current)" exec "$ss_bin" --config "$CONF"
    ) >>"$LOGS/service.log" 2>&1 </dev/null &
    write_pid service $!
    version_of current >"$RUN/service.version"
}

# Stop the edge service: TERM, then KILL after ten seconds.
stop_service() {
    st_pid=$(pid_in service) || { rm -f "$RUN/service.pid"; return 0; }
    kill "$st_pid" 2>/dev/null || true
    st_i=0
    while kill -0 "$st_pid" 2>/dev/null && [ $st_i -lt 50 ]; do
        nap 0.2
        st_i=$((st_i + 1))
    done
    kill -9 "$st_pid" 2>/dev/null || true
    rm -f "$RUN/service.pid"
}

# Whether the service is up HEALTH_SECS after a start (true when the version has none).
service_stays_up() {
    [ -x "$PREFIX/current/bin/iot-edge" ] || return 0
    nap "$HEALTH_SECS"
    pid_in service >/dev/null
}

# report ID STATUS [TEXT]: one line of a deployment's log on the host. Sets rp_code.
report() {
    if [ -n "${3:-}" ]; then
        rp_body=$(printf '{"DeploymentID":%s,"Status":"%s","Log":"%s"}' "$1" "$2" "$(json_escape "$3")")
    else
        rp_body=$(printf '{"DeploymentID":%s,"Status":"%s"}' "$1" "$2")
    fi
    rp_code=$(http_post "$REPORT_URL" "$rp_body" "$TMP/report.json")
    [ "$rp_code" = 200 ] && return 0
    log "reporting $2 on deployment $1 failed (HTTP $rp_code): $(cat "$TMP/report.json" 2>/dev/null || true)"
    return 1
}

# A final report must land, or the host hands the deployment out again: when the host
# refuses the text itself (4xx), the status goes without it; when the host cannot be reached
# the report is kept in run/pending/<id> and sent before the next poll.
# The report is written to run/pending first and removed once the host has it (or refused it
# for good: 404 or 409), so a stop or power cut while sending loses nothing.
report_final() {
    mkdir -p "$RUN/pending"
    if [ ! -f "$RUN/pending/$1" ]; then
        { echo "$2"; printf '%s' "${3:-}"; } >"$RUN/pending/.$1.new"
        mv -f "$RUN/pending/.$1.new" "$RUN/pending/$1"
    fi
    if report "$@"; then
        rm -f "$RUN/pending/$1"
        return 0
    fi
    case "$rp_code" in
    400 | 413)
        if report "$1" "$2" "(the host refused this report's text, HTTP $rp_code; see $LOGS/agent.log)"; then
            rm -f "$RUN/pending/$1"
            return 0
        fi
        ;;
    esac
    case "$rp_code" in
    404 | 409) rm -f "$RUN/pending/$1" ;;
    *) log "deployment $1: keeping the $2 report until the host takes it" ;;
    esac
    return 1
}

# Send the final reports the host has not taken yet; fails while one is still pending, so
# the agent does not ask for (and carry out again) a deployment it has already finished.
send_pending() {
    for sp_file in "$RUN"/pending/*; do
        [ -f "$sp_file" ] || continue
        sp_id=${sp_file##*/}
        case "$sp_id" in '' | *[!0-9]*) continue ;; esac
        sp_status=$(head -n 1 "$sp_file")
        sp_text=$(tail -n +2 "$sp_file")
        case "$sp_status" in
        success | failed) ;;
        *)
            rm -f "$sp_file"
            continue
            ;;
        esac
        report_final "$sp_id" "$sp_status" "$sp_text" || return 1
        log "deployment $sp_id: the host took the kept $sp_status report"
    done
}

# Carry out one deployment the host handed out.
deploy() {
    dp_id=$1 dp_answer=$2
    dp_ver=$(json_field "$dp_answer" SoftwareVersion)
    dp_url=$(json_field "$dp_answer" URL)
    dp_sha=$(json_field "$dp_answer" SHA256)
    dp_md5=$(json_field "$dp_answer" MD5)
    dp_keep=$(json_field "$dp_answer" KeepLocal)
    if [ -z "$dp_url" ]; then
        log "deployment $dp_id: the host has no release for $ARCH"
        report_final "$dp_id" failed "no release of $PRODUCT_SN for $ARCH to deploy; upload one and create the deployment again"
        return
    fi
    dp_from=$(version_of current || echo none)
    log "deployment $dp_id: installing $dp_ver over $dp_from"
    report "$dp_id" processing "gateway $GATEWAY_SN: installing $dp_ver ($ARCH) over $dp_from" || return
    lock || { log "deployment $dp_id: $RUN/changer is held; trying again later"; return; }
    if ! dp_out=$(install_package "$dp_ver" "$dp_url" "$dp_sha" "$dp_md5" 2>&1); then
        unlock
        log "deployment $dp_id failed: $dp_out"
        report_final "$dp_id" failed "$dp_out"
        return
    fi
    if [ "$dp_keep" = true ]; then
        unlock
        report_final "$dp_id" success "$dp_out
KeepLocal: the running service was left running; it starts $dp_ver when it next restarts"
        return
    fi
    stop_service
    start_service
    if service_stays_up; then
        unlock
        log "deployment $dp_id: $dp_ver is running"
        report_final "$dp_id" success "$dp_out
$dp_ver running$(pid_in service | sed 's/^/ (pid /; s/$/)/')"
        return
    fi
    dp_tail=$(tail -n 5 "$LOGS/service.log" 2>/dev/null || true)
    dp_back=$(version_of previous || true)
    if [ -n "$dp_back" ] && [ "$dp_back" != "$dp_ver" ]; then
        relink current "$dp_back"
        stop_service
        start_service
        dp_rb="rolled back to $dp_back"
    else
        dp_rb="no previous version to roll back to"
    fi
    unlock
    log "deployment $dp_id: $dp_ver did not stay up; $dp_rb"
    report_final "$dp_id" failed "$dp_out
$dp_ver did not stay up for ${HEALTH_SECS}s; $dp_rb
service log:
$dp_tail"
}

# Ask the host once; log only changes of the host's reachability, not every failed poll.
poll_once() {
    send_pending || return 0
    po_code=$(http_post "$POLL_URL" '{}' "$TMP/poll.json")
    if [ "$po_code" != 200 ]; then
        if [ "$po_code" != "$po_last" ]; then
            case "$po_code" in
            401 | 403) log "the host refused this gateway's credentials (HTTP $po_code); was it reinstalled? run the new DownloadCmd" ;;
            *) log "asking $POLL_URL failed (HTTP $po_code); retrying every ${POLL_SECS}s" ;;
            esac
        fi
        po_last=$po_code
        return
    fi
    [ "$po_last" = 200 ] || [ "$po_last" = start ] || log "the host answers again"
    po_last=200
    po_answer=$(cat "$TMP/poll.json")
    po_id=$(json_field "$po_answer" DeploymentID)
    case "$po_id" in
    '' | *[!0-9]*) return ;;
    esac
    deploy "$po_id" "$po_answer"
}

run_agent() {
    load_config
    mkdir -p "$RUN" "$LOGS" "$TMP"
    write_pid agent $$
    trap '' HUP
    trap 'stop_service; drop_pid agent $$; exit 0' TERM INT
    set +e
    po_last=start
    log "agent for gateway $GATEWAY_SN of $PRODUCT_SN: asking $POLL_URL every ${POLL_SECS}s"
    warn_plain_http 2>&1 | while read -r line; do log "$line"; done
    while :; do
        # Read again each time: a reinstall (new secret) takes effect without a restart.
        # shellcheck source=/dev/null
        [ -f "$CONF" ] && . "$CONF"
        if [ -x "$PREFIX/current/bin/iot-edge" ] && ! pid_in service >/dev/null && lock; then
            if ! pid_in service >/dev/null; then
                start_service
                log "edge service $(version_of current) started (pid $(pid_in service || echo '?'))"
            fi
            unlock
        fi
        poll_once
        sleep "$POLL_SECS" &
        wait $!
    done
}

# Copy this script to $SELF, which the agent and the systemd unit run.
install_self() {
    mkdir -p "$PREFIX/bin"
    [ -f "$SELF" ] && cmp -s "$0" "$SELF" && return 0
    cp "$0" "$SELF.new"
    chmod 755 "$SELF.new"
    mv -f "$SELF.new" "$SELF"
}

init_mode() {
    case "${IOT_EDGE_INIT:-auto}" in
    systemd | process) echo "$IOT_EDGE_INIT" ;;
    auto)
        if [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ] && have systemctl; then
            echo systemd
        else
            echo process
        fi
        ;;
    *) die "IOT_EDGE_INIT must be auto, systemd or process" ;;
    esac
}

# Stop a running agent (which stops the service): TERM, then KILL after 15 s (an agent in
# the middle of a download answers TERM only when the download ends).
stop_agent() {
    sa_pid=$(pid_in agent) || return 0
    kill "$sa_pid" 2>/dev/null || true
    sa_i=0
    while kill -0 "$sa_pid" 2>/dev/null && [ $sa_i -lt 75 ]; do
        nap 0.2
        sa_i=$((sa_i + 1))
    done
    kill -9 "$sa_pid" 2>/dev/null || true
    drop_pid agent "$sa_pid"
}

start() {
    load_config
    st_mode=$(init_mode) || exit 1
    install_self
    mkdir -p "$RUN" "$LOGS" "$TMP"
    case "$st_mode" in
    systemd)
        lock || die "another iot_edge_process holds $RUN/changer"
        cat >"$UNIT" <<UNIT
[Unit]
Description=IoTStack edge agent for gateway $GATEWAY_SN
After=network-online.target
Wants=network-online.target

[Service]
Environment="IOT_EDGE_PREFIX=$PREFIX"
Environment="IOT_EDGE_POLL_SECS=$POLL_SECS"
Environment="IOT_EDGE_HEALTH_SECS=$HEALTH_SECS"
ExecStart=/bin/sh "$SELF" --agent
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
        systemctl daemon-reload
        systemctl enable iot-edge.service >/dev/null 2>&1 || true
        systemctl restart iot-edge.service || { unlock; die "systemctl restart iot-edge.service failed"; }
        unlock
        say "agent started under systemd (iot-edge.service)"
        ;;
    process)
        # A running agent is restarted, so a reinstall's new script and secret take effect.
        lock || die "another iot_edge_process holds $RUN/changer"
        if pid_in agent >/dev/null; then
            stop_agent
            say "stopped the running agent"
        fi
        if have nohup; then
            nohup sh "$SELF" --agent >>"$LOGS/agent.log" 2>&1 </dev/null &
        else
            sh "$SELF" --agent >>"$LOGS/agent.log" 2>&1 </dev/null &
        fi
        st_i=0
        until st_pid=$(pid_in agent); do
            st_i=$((st_i + 1))
            if [ $st_i -gt 25 ]; then
                unlock
                die "the agent did not start; $LOGS/agent.log ends with: $(tail -n 3 "$LOGS/agent.log")"
            fi
            nap 0.2
        done
        unlock
        say "agent started (pid $st_pid); log in $LOGS/agent.log"
        ;;
    esac
}

# Stop the agent and the service until the next --start (under systemd: also at boot).
stop() {
    if [ -f "$UNIT" ] && have systemctl; then
        systemctl disable iot-edge.service >/dev/null 2>&1 || true
        systemctl stop iot-edge.service || true
    fi
    lock || die "another iot_edge_process holds $RUN/changer"
    stop_agent
    stop_service
    unlock
    say "stopped; --start starts it again"
}

status() {
    echo "gateway:  $GATEWAY_SN (product $PRODUCT_SN, $ARCH)"
    echo "current:  $(version_of current || echo none)"
    echo "previous: $(version_of previous || echo none)"
    if ag_pid=$(pid_in agent); then echo "agent:    running (pid $ag_pid)"; else echo "agent:    stopped"; fi
    if sv_pid=$(pid_in service); then
        echo "service:  running $(cat "$RUN/service.version" 2>/dev/null || true) (pid $sv_pid)"
    else
        echo "service:  stopped"
    fi
}

case "${1:-}" in
--install)
    [ $# -ge 3 ] || die "usage: --install <arch> <version> [sh]"
    safe_version "$3" || die "'$3' is not a version"
    [ "$2" = "$ARCH" ] || echo "warning: installing for $2; this gateway was configured for $ARCH" >&2
    [ "$3" = "$EXPECTED_VERSION" ] || echo "warning: installing $3; this gateway was configured for $EXPECTED_VERSION" >&2
    warn_plain_http
    mkdir -p "$PREFIX/etc" "$RUN" "$LOGS" "$TMP"
    info="$TMP/package.txt"
    code=$(http_get "$SERVER/install/$DEVICE_KEY/packages/$2/$3" "$info")
    [ "$code" = 200 ] || die "the host has no release $3 for $2 (HTTP $code): $(cat "$info" 2>/dev/null || true)"
    field() { sed -n "s/^$1=//p" "$info"; }
    lock || die "another iot_edge_process holds $RUN/changer"
    install_package "$(field version)" "$(field url)" "$(field sha256)" "$(field md5)" || { unlock; die "--install failed"; }
    install_self
    if [ -n "$ip_changed" ] && pid_in service >/dev/null; then
        stop_service
        start_service
        say "edge service restarted on $(version_of current)"
    fi
    unlock
    ;;
--config)
    [ $# -ge 5 ] || die "usage: --config <product-sn> <gateway-sn> <device-secret> <password>"
    [ "$2" = "$PRODUCT_SN" ] || die "this script was issued for product $PRODUCT_SN, not $2"
    [ "$3" = "$GATEWAY_SN" ] || die "this script was issued for gateway $GATEWAY_SN, not $3"
    warn_plain_http
    mkdir -p "$PREFIX/etc" "$TMP"
    # Checked before anything is written, so a mistyped secret never replaces a good one.
    DEVICE_SECRET=$4
    code=$(http_post "$POLL_URL" '{}' "$TMP/check.json")
    case "$code" in
    401 | 403) die "the host refused these credentials (HTTP $code): $(cat "$TMP/check.json" 2>/dev/null || true)" ;;
    esac
    (
        umask 077
        {
            echo "PRODUCT_SN=$(q "$2")"
            echo "GATEWAY_SN=$(q "$3")"
            echo "DEVICE_KEY=$(q "$DEVICE_KEY")"
            echo "DEVICE_SECRET=$(q "$4")"
            echo "CONSOLE_PASSWORD=$(q "$5")"
        } >"$CONF.new"
        mv -f "$CONF.new" "$CONF"
    )
    case "$code" in
    200) say "gateway $3 configured; the host accepted its credentials" ;;
    *) say "gateway $3 configured; the host did not answer yet (HTTP $code), the agent will keep asking" ;;
    esac
    ;;
--start)
    start
    ;;
--agent)
    run_agent
    ;;
--stop)
    stop
    ;;
--status)
    status
    ;;
--rollback)
    back=$(version_of previous) || die "no previous version to roll back to"
    now=$(version_of current || true)
    [ "$back" != "$now" ] || die "no previous version to roll back to ($now is current)"
    lock || die "another iot_edge_process holds $RUN/changer"
    relink current "$back"
    [ -n "$now" ] && relink previous "$now"
    if pid_in service >/dev/null; then
        stop_service
        start_service
    fi
    unlock
    say "rolled back to $back${now:+ (previous: $now)}"
    ;;
--report)
    [ $# -ge 3 ] || die "usage: --report <deployment-id> <processing|success|failed> [log text]"
    case "$2" in '' | *[!0-9]*) die "deployment id must be a number" ;; esac
    case "$3" in processing | success | failed) ;; *) die "status must be processing, success or failed" ;; esac
    load_config
    mkdir -p "$TMP"
    report "$2" "$3" "${4:-}" || die "the host did not take the report (HTTP $rp_code)"
    cat "$TMP/report.json"
    echo
    ;;
*)
    die "usage: --install | --config | --start | --stop | --status | --rollback | --report | --agent"
    ;;
esac
