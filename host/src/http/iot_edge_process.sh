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
# Seconds since boot where /proc has them: gateways without a battery-backed clock jump years
# when NTP first answers, and no wait below may end early (or last for ever) on that account.
now() {
    if [ -r /proc/uptime ]; then cut -d. -f1 /proc/uptime; else date +%s; fi
}
# A short pause; where sleep takes whole seconds only (some BusyBox builds) it is one second,
# so every wait below is bounded by the clock, not by a count of pauses.
nap() { sleep "$1" 2>/dev/null || sleep 1; }

# wait_gone PID SECS: whether the process PID exits within SECS seconds.
wait_gone() {
    wg_end=$(($(now) + $2))
    while kill -0 "$1" 2>/dev/null; do
        [ "$(now)" -lt "$wg_end" ] || return 1
        nap 0.2
    done
}

# Temporary files are named <pid>.<what>: the agent and a --report typed by hand never share
# one, and those of processes that have exited (a download killed by --stop) are removed.
tmp() { echo "$TMP/$$.$1"; }
sweep_tmp() {
    for sw_file in "$TMP"/*; do
        [ -e "$sw_file" ] || continue
        sw_pid=${sw_file##*/}
        sw_pid=${sw_pid%%.*}
        case "$sw_pid" in
        '' | *[!0-9]*) rm -rf "$sw_file" ;;
        "$$") ;;
        *) kill -0 "$sw_pid" 2>/dev/null || rm -rf "$sw_file" ;;
        esac
    done
}

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
        wget -S -q -T 60 ${WGET_GNU:+-t 1 --content-on-error} -O "$2" "$1" 2>"$(tmp wget.hdr)" || true
        hg_code=$(wget_status "$(tmp wget.hdr)")
    fi
    echo "$hg_code"
}

# POST the JSON $2 to $1 with the gateway's credentials, the answer into the file $3. The
# credentials never show in `ps`: curl reads them from stdin, GNU wget from a private
# wgetrc; only BusyBox wget takes them as an argument.
http_post() {
    rm -f "$3"
    hp_body=$(tmp body.json)
    (umask 077 && printf '%s' "$2" >"$hp_body")
    if have curl; then
        hp_code=$(printf 'user = "%s:%s"\n' "$DEVICE_KEY" "$DEVICE_SECRET" |
            curl -sS -K - --connect-timeout 10 --max-time 30 -o "$3" -w '%{http_code}' \
                -H 'Content-Type: application/json' --data-binary "@$hp_body" "$1") ||
            hp_code=000
    else
        hp_auth=$(printf '%s:%s' "$DEVICE_KEY" "$DEVICE_SECRET" | base64 | tr -d '\n')
        if [ -n "$WGET_GNU" ]; then
            (umask 077 && printf 'header = Authorization: Basic %s\n' "$hp_auth" >"$(tmp wgetrc)")
            WGETRC="$(tmp wgetrc)" wget -S -q -T 30 -t 1 --content-on-error -O "$3" \
                --header='Content-Type: application/json' --post-file="$hp_body" \
                "$1" 2>"$(tmp wget.hdr)" || true
            rm -f "$(tmp wgetrc)"
        else
            wget -S -q -T 30 -O "$3" --header="Authorization: Basic $hp_auth" \
                --header='Content-Type: application/json' --post-file="$hp_body" \
                "$1" 2>"$(tmp wget.hdr)" || true
        fi
        hp_code=$(wget_status "$(tmp wget.hdr)")
    fi
    rm -f "$hp_body"
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

# The folder under versions/ the running service runs from; fails when none runs.
running_dir() { pid_in service >/dev/null && cat "$RUN/service.dir" 2>/dev/null; }

# Reinstalling version V swaps folders with two renames; when the changer died in between
# (a power cut), versions/V is missing: the folder renamed aside goes back. Under the lock.
repair() {
    for rp_old in "$PREFIX"/versions/.*.old.*; do
        [ -d "$rp_old" ] || continue
        rp_name=${rp_old##*/}
        rp_ver=${rp_name#.}
        rp_ver=${rp_ver%.old.*}
        [ -e "$PREFIX/versions/$rp_ver" ] && continue
        mv "$rp_old" "$PREFIX/versions/$rp_ver" || continue
        [ "$(running_dir || true)" = "$rp_name" ] && echo "$rp_ver" >"$RUN/service.dir"
    done
    return 0
}

# Keep only the current and the previous version on disk, and the folder the service runs
# from (with KeepLocal it may be older than both, or a replaced folder renamed aside). Run
# under the lock: every .<version>.new staging folder then belongs to a changer that died.
prune() {
    repair
    pr_cur=$(version_of current || true)
    pr_prev=$(version_of previous || true)
    pr_run=$(running_dir || true)
    for pr_dir in "$PREFIX"/versions/* "$PREFIX"/versions/.*.new "$PREFIX"/versions/.*.old.*; do
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
    sweep_tmp
}

# fetch_package VERSION URL SHA256 MD5: download a release into $(tmp package) and verify
# it. Needs no lock, so a slow download never holds up --stop or --rollback. Returns 2 when
# VERSION is current and was installed from this very file: its folder may be what the
# service runs from, and there is nothing to do.
fetch_package() {
    fp_ver=$1 fp_url=$2 fp_sha=$3 fp_md5=$4
    safe_version "$fp_ver" || { echo "refusing unsafe version name '$fp_ver'"; return 1; }
    fp_want=${fp_sha:-$fp_md5}
    [ -n "$fp_want" ] || { echo "the host gave no checksum for $fp_ver; nothing installed"; return 1; }
    if [ "$(version_of current || true)" = "$fp_ver" ] && [ -d "$PREFIX/versions/$fp_ver" ] &&
        [ "$(cat "$PREFIX/versions/.$fp_ver.sum" 2>/dev/null || true)" = "$fp_want" ]; then
        echo "$fp_ver is already installed and current ($fp_want)"
        return 2
    fi
    mkdir -p "$TMP"
    fp_pkg=$(tmp package)
    echo "downloading $fp_ver from $fp_url"
    fp_code=$(http_get "$fp_url" "$fp_pkg")
    if [ "$fp_code" != 200 ]; then
        echo "download failed (HTTP $fp_code)"
        rm -f "$fp_pkg"
        return 1
    fi
    if [ -n "$fp_sha" ]; then
        fp_got=$(sha256_of "$fp_pkg") fp_what=SHA-256
    else
        fp_got=$(md5_of "$fp_pkg") fp_what=MD5
    fi
    if [ "$fp_got" != "$fp_want" ]; then
        echo "$fp_what mismatch: expected $fp_want, got $fp_got; nothing installed"
        rm -f "$fp_pkg"
        return 1
    fi
    echo "$fp_what $fp_got verified"
}

# unpack_package VERSION CHECKSUM, under the lock: unpack what fetch_package fetched into
# versions/VERSION and make it current, the version before becoming previous. On failure
# returns non-zero with current untouched.
unpack_package() {
    up_ver=$1 up_sum=$2 up_pkg=$(tmp package) up_gone=
    up_stage="$PREFIX/versions/.$up_ver.new"
    mkdir -p "$PREFIX/versions"
    rm -rf "$up_stage"
    # Unpacked one level down in a folder only its owner may enter: tar gives a folder the
    # archive's mode (a ./ entry of 777) as it goes, before the chmod below can run.
    if ! mkdir -m 700 "$up_stage" || ! mkdir "$up_stage/root"; then
        echo "cannot create $up_stage"
        rm -f "$up_pkg"
        return 1
    fi
    # gzip's magic bytes; od -b is the one od form every BusyBox build has.
    up_z=
    case "$(head -c 2 "$up_pkg" | od -b | head -n 1)" in *" 037 213"*) up_z=-z ;; esac
    # -o: files belong to whoever installs (root), never to the archive's recorded owners;
    # then nothing is writable by others or set-id, so a package cannot plant a file another
    # user could change before root runs it.
    if ! up_out=$(tar -x -o $up_z -f "$up_pkg" -C "$up_stage/root" 2>&1) ||
        ! up_out=$(chmod -R go-w,ug-s "$up_stage/root" 2>&1); then
        echo "unpacking failed: $up_out"
        rm -rf "$up_stage" "$up_pkg"
        return 1
    fi
    rm -f "$up_pkg"
    up_old=$(version_of current || true)
    [ "$up_old" = "$up_ver" ] && up_old=$(version_of previous || true)
    # The folder being replaced is renamed aside, never emptied in place: the service may
    # run from it, and prune removes it once nothing does. No signal stops the swap half-way
    # (a power cut can; repair undoes that).
    trap '' HUP INT TERM
    if [ -d "$PREFIX/versions/$up_ver" ]; then
        up_n=0
        while [ -e "$PREFIX/versions/.$up_ver.old.$$.$up_n" ]; do up_n=$((up_n + 1)); done
        up_gone=".$up_ver.old.$$.$up_n"
        if ! mv "$PREFIX/versions/$up_ver" "$PREFIX/versions/$up_gone"; then
            echo "cannot move the installed $up_ver aside; nothing installed"
            rm -rf "$up_stage"
            exit_on_signals
            return 1
        fi
        [ "$(running_dir || true)" = "$up_ver" ] && echo "$up_gone" >"$RUN/service.dir"
    fi
    if ! mv "$up_stage/root" "$PREFIX/versions/$up_ver"; then
        echo "cannot move $up_ver into place; nothing installed"
        repair
        rm -rf "$up_stage"
        exit_on_signals
        return 1
    fi
    exit_on_signals
    rmdir "$up_stage"
    echo "$up_sum" >"$PREFIX/versions/.$up_ver.sum"
    if [ -n "$up_old" ] && [ -d "$PREFIX/versions/$up_old" ] && ! relink previous "$up_old"; then
        echo "cannot point previous at $up_old"
    fi
    relink current "$up_ver" || { echo "cannot point current at $up_ver"; return 1; }
    prune
    echo "installed $up_ver in $PREFIX/versions/$up_ver${up_old:+ (previous: $up_old)}"
}

# A process's start time (from /proc, where there is one): kept with its pid in pid files and
# the lock, so a file left before a reboot naming a pid reused since is never taken for ours.
proc_start() { [ -r "/proc/$1/stat" ] && sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f20; }

# alive PID START: whether that process still runs (START empty: where /proc is missing).
alive() {
    case "$1" in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$1" 2>/dev/null || return 1
    [ -z "$2" ] || [ ! -r "/proc/$1/stat" ] || [ "$(proc_start "$1")" = "$2" ]
}

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
    alive "$pi_pid" "$pi_start" || return 1
    echo "$pi_pid"
}

# One changer of the service and the links at a time (the agent, --install, --rollback,
# --start, --stop). The lock is a symbolic link to the holder's "pid:start-time": made
# atomically, holder included, so it is never seen without one. A lock whose holder died is
# taken over by one waiter at a time (run/changer.takeover), and only while it still names the
# dead holder. After a minute of waiting, give up. Whoever exits holding it releases it (the
# EXIT trap below).
me() { echo "$$:$(proc_start $$ || true)"; }
lock() {
    mkdir -p "$RUN"
    lk_me=$(me) lk_end=$(($(now) + 60)) lk_t=0
    until ln -s "$lk_me" "$RUN/changer" 2>/dev/null; do
        lk_by=$(readlink "$RUN/changer" 2>/dev/null || true)
        case "$lk_by" in *:*) ;; *) lk_by="$lk_by:" ;; esac
        if [ "$lk_by" != : ] && ! alive "${lk_by%%:*}" "${lk_by#*:}"; then
            if mkdir "$RUN/changer.takeover" 2>/dev/null; then
                case "$(readlink "$RUN/changer" 2>/dev/null || true)" in
                "$lk_by" | "${lk_by%:}") rm -f "$RUN/changer" ;;
                esac
                rmdir "$RUN/changer.takeover"
                continue
            fi
            # A waiter that died between those two lines left the takeover behind.
            lk_t=$((lk_t + 1))
            [ $lk_t -lt 50 ] || { rmdir "$RUN/changer.takeover" 2>/dev/null || true; lk_t=0; }
        fi
        [ "$(now)" -lt "$lk_end" ] || return 1
        nap 0.1
    done
}
unlock() {
    [ "$(readlink "$RUN/changer" 2>/dev/null || true)" = "$(me)" ] && rm -f "$RUN/changer"
    return 0
}

# Start the current version's edge service, if it has one and it is not running.
# It runs from versions/<version> itself, not through the current link, and run/service.dir
# names that folder so prune keeps it while the service runs.
start_service() {
    ss_ver=$(version_of current) || return 0
    ss_dir="$PREFIX/versions/$ss_ver"
    [ -x "$ss_dir/bin/iot-edge" ] || return 0
    pid_in service >/dev/null && return 0
    mkdir -p "$RUN" "$LOGS"
    (
        cd "$ss_dir" &&
            IOT_EDGE_CONFIG="$CONF" IOT_EDGE_PREFIX="$PREFIX" \
                IOT_EDGE_VERSION="$ss_ver" exec "$ss_dir/bin/iot-edge" --config "$CONF"
    ) >>"$LOGS/service.log" 2>&1 </dev/null &
    write_pid service $!
    echo "$ss_ver" >"$RUN/service.version"
    echo "$ss_ver" >"$RUN/service.dir"
}

# Stop the edge service: TERM, then KILL after ten seconds.
stop_service() {
    st_pid=$(pid_in service) || { rm -f "$RUN/service.pid"; return 0; }
    kill "$st_pid" 2>/dev/null || true
    wait_gone "$st_pid" 10 || kill -9 "$st_pid" 2>/dev/null || true
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
    rp_code=$(http_post "$REPORT_URL" "$rp_body" "$(tmp report.json)")
    [ "$rp_code" = 200 ] && return 0
    [ -n "${rp_quiet:-}" ] || log "reporting $2 on deployment $1 failed (HTTP $rp_code): $(cat "$(tmp report.json)" 2>/dev/null || true)"
    return 1
}

# A final report must land, or the host hands the deployment out again: when the host
# refuses the text itself (400, 413), the status goes without it; otherwise the report waits
# in run/pending/<id> and goes before the next poll. It is written there first and removed
# once the host has it (or refused it for good: 404 or 409), so a stop or power cut while
# sending loses nothing. A host that answers but fails on it (5xx) for an hour must not stop
# the gateway from polling for ever: the report is then dropped, and the host, still waiting
# on the deployment, hands it out again (reinstalling the same version from the same file
# changes nothing). Markers beside it: .<id>.kept (logged once), .<id>.5xx (first 5xx time).
report_final() {
    mkdir -p "$RUN/pending"
    if [ ! -f "$RUN/pending/$1" ]; then
        { echo "$2"; printf '%s' "${3:-}"; } >"$RUN/pending/.$1.new"
        mv -f "$RUN/pending/.$1.new" "$RUN/pending/$1"
    fi
    # A report already kept has been logged as such: its retries say nothing more.
    rp_quiet=
    [ -f "$RUN/pending/.$1.kept" ] && rp_quiet=1
    if report "$@"; then
        rp_quiet=
        drop_report "$1"
        return 0
    fi
    rp_quiet=
    case "$rp_code" in
    400 | 413)
        if report "$1" "$2" "(the host refused this report's text, HTTP $rp_code; see $LOGS/agent.log)"; then
            drop_report "$1"
            return 0
        fi
        ;;
    esac
    case "$rp_code" in
    404 | 409)
        drop_report "$1"
        return 1
        ;;
    5[0-9][0-9])
        [ -f "$RUN/pending/.$1.5xx" ] || date +%s >"$RUN/pending/.$1.5xx"
        if [ $(($(date +%s) - $(cat "$RUN/pending/.$1.5xx"))) -ge 3600 ]; then
            log "deployment $1: the host has failed on the $2 report for an hour (HTTP $rp_code); dropping it, the host will hand the deployment out again"
            drop_report "$1"
            return 1
        fi
        ;;
    esac
    if [ ! -f "$RUN/pending/.$1.kept" ]; then
        : >"$RUN/pending/.$1.kept"
        log "deployment $1: keeping the $2 report until the host takes it (HTTP $rp_code)"
    fi
    return 1
}
drop_report() { rm -f "$RUN/pending/$1" "$RUN/pending/.$1".*; }

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
            drop_report "$sp_id"
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
    dp_got=0
    dp_out=$(fetch_package "$dp_ver" "$dp_url" "$dp_sha" "$dp_md5" 2>&1) || dp_got=$?
    if [ "$dp_got" != 0 ] && [ "$dp_got" != 2 ]; then
        log "deployment $dp_id failed: $dp_out"
        report_final "$dp_id" failed "$dp_out"
        return
    fi
    if ! lock; then
        rm -f "$(tmp package)"
        log "deployment $dp_id: $RUN/changer is held; trying again later"
        return
    fi
    if [ "$dp_got" = 0 ]; then
        dp_more=$(unpack_package "$dp_ver" "${dp_sha:-$dp_md5}" 2>&1) || dp_got=$?
        dp_out="$dp_out
$dp_more"
        if [ "$dp_got" != 0 ]; then
            unlock
            log "deployment $dp_id failed: $dp_out"
            report_final "$dp_id" failed "$dp_out"
            return
        fi
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
        # The folder the old service ran from goes now, not at the next install.
        prune
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
    po_code=$(http_post "$POLL_URL" '{}' "$(tmp poll.json)")
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
    po_answer=$(cat "$(tmp poll.json)")
    po_id=$(json_field "$po_answer" DeploymentID)
    case "$po_id" in
    '' | *[!0-9]*) return ;;
    esac
    deploy "$po_id" "$po_answer"
}

run_agent() {
    load_config
    mkdir -p "$RUN" "$LOGS" "$TMP"
    # One agent per gateway, however it was started (by hand, as a process, under systemd).
    if ra_pid=$(pid_in agent) && [ "$ra_pid" != $$ ]; then
        log "another agent runs (pid $ra_pid); not starting a second one"
        exit 1
    fi
    write_pid agent $$
    sweep_tmp
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
        # current pointing at nothing: a reinstall cut off half-way, which repair undoes.
        if [ -L "$PREFIX/current" ] && [ ! -e "$PREFIX/current" ] && lock; then
            repair
            unlock
        fi
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

# Stop and disable the systemd unit, where an earlier --start made one.
stop_unit() {
    [ -f "$UNIT" ] && have systemctl || return 0
    systemctl disable iot-edge.service >/dev/null 2>&1 || true
    systemctl stop iot-edge.service || true
}

# Stop a running agent (which stops the service): TERM, then KILL after 15 s (an agent in
# the middle of a download answers TERM only when the download ends).
stop_agent() {
    sa_pid=$(pid_in agent) || return 0
    kill "$sa_pid" 2>/dev/null || true
    wait_gone "$sa_pid" 15 || kill -9 "$sa_pid" 2>/dev/null || true
    drop_pid agent "$sa_pid"
}

# Start the agent, in place of whichever one runs: a reinstall's new script and secret take
# effect, and switching between systemd and process never leaves two agents polling.
start() {
    load_config
    st_mode=$(init_mode) || exit 1
    install_self
    mkdir -p "$RUN" "$LOGS" "$TMP"
    lock || die "another iot_edge_process holds $RUN/changer"
    case "$st_mode" in
    systemd)
        stop_agent
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
        systemctl restart iot-edge.service || die "systemctl restart iot-edge.service failed"
        unlock
        say "agent started under systemd (iot-edge.service)"
        ;;
    process)
        stop_unit
        if pid_in agent >/dev/null; then
            stop_agent
            say "stopped the running agent"
        fi
        if have nohup; then
            nohup sh "$SELF" --agent >>"$LOGS/agent.log" 2>&1 </dev/null &
        else
            sh "$SELF" --agent >>"$LOGS/agent.log" 2>&1 </dev/null &
        fi
        st_end=$(($(now) + 5))
        until st_pid=$(pid_in agent); do
            [ "$(now)" -lt "$st_end" ] ||
                die "the agent did not start; $LOGS/agent.log ends with: $(tail -n 3 "$LOGS/agent.log")"
            nap 0.2
        done
        unlock
        say "agent started (pid $st_pid); log in $LOGS/agent.log"
        ;;
    esac
}

# Stop the agent and the service until the next --start (under systemd: also at boot).
# Taken under the lock, so the agent is never stopped halfway through changing versions.
stop() {
    lock || die "another iot_edge_process holds $RUN/changer"
    stop_unit
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

# Whoever exits holding the lock (die included) releases it. dash and BusyBox run the EXIT
# trap only on exit, so a signal becomes one.
exit_on_signals() {
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
trap unlock EXIT
exit_on_signals

case "${1:-}" in
--install)
    [ $# -ge 3 ] || die "usage: --install <arch> <version> [sh]"
    safe_version "$3" || die "'$3' is not a version"
    [ "$2" = "$ARCH" ] || echo "warning: installing for $2; this gateway was configured for $ARCH" >&2
    [ "$3" = "$EXPECTED_VERSION" ] || echo "warning: installing $3; this gateway was configured for $EXPECTED_VERSION" >&2
    warn_plain_http
    mkdir -p "$PREFIX/etc" "$RUN" "$LOGS" "$TMP"
    info=$(tmp package.txt)
    code=$(http_get "$SERVER/install/$DEVICE_KEY/packages/$2/$3" "$info")
    [ "$code" = 200 ] || die "the host has no release $3 for $2 (HTTP $code): $(cat "$info" 2>/dev/null || true)"
    field() { sed -n "s/^$1=//p" "$info"; }
    ver=$(field version) url=$(field url) sha=$(field sha256) md5=$(field md5)
    rm -f "$info"
    got=0
    fetch_package "$ver" "$url" "$sha" "$md5" || got=$?
    [ "$got" = 0 ] || [ "$got" = 2 ] || die "--install failed"
    lock || die "another iot_edge_process holds $RUN/changer"
    if [ "$got" = 0 ]; then
        unpack_package "$ver" "${sha:-$md5}" || die "--install failed"
        if pid_in service >/dev/null; then
            stop_service
            start_service
            say "edge service restarted on $(version_of current)"
            prune
        fi
    fi
    install_self
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
    check=$(tmp check.json)
    code=$(http_post "$POLL_URL" '{}' "$check")
    case "$code" in
    401 | 403) die "the host refused these credentials (HTTP $code): $(cat "$check" 2>/dev/null || true)" ;;
    esac
    rm -f "$check"
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
    lock || die "another iot_edge_process holds $RUN/changer"
    back=$(version_of previous) || die "no previous version to roll back to"
    cur=$(version_of current || true)
    [ "$back" != "$cur" ] || die "no previous version to roll back to ($cur is current)"
    relink current "$back"
    [ -n "$cur" ] && relink previous "$cur"
    if pid_in service >/dev/null; then
        stop_service
        start_service
    fi
    unlock
    say "rolled back to $back${cur:+ (previous: $cur)}"
    ;;
--report)
    [ $# -ge 3 ] || die "usage: --report <deployment-id> <processing|success|failed> [log text]"
    case "$2" in '' | *[!0-9]*) die "deployment id must be a number" ;; esac
    case "$3" in processing | success | failed) ;; *) die "status must be processing, success or failed" ;; esac
    load_config
    mkdir -p "$TMP"
    report "$2" "$3" "${4:-}" || die "the host did not take the report (HTTP $rp_code)"
    cat "$(tmp report.json)"
    echo
    rm -f "$(tmp report.json)"
    ;;
*)
    die "usage: --install | --config | --start | --stop | --status | --rollback | --report | --agent"
    ;;
esac
