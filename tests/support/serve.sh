# Sourced by the suite's scripts that drive a real server (tests/schemathesis/run.sh,
# tests/oss2/run.sh): `start_server` runs "$bin" serve on a free loopback port with the data
# directory "$work/data" and the configuration "$work/ota.toml", its output in
# "$work/stdout" and "$work/stderr"; sets `server` (its pid, for the caller's cleanup) and
# `base` (http://127.0.0.1:<port>), and keeps requests to it off any proxy.
start_server() {
    # Port 0: the server binds a free port and prints it, so nothing can take it in between.
    RUST_LOG="${RUST_LOG:-warn}" "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
        --config "$work/ota.toml" >"$work/stdout" 2>"$work/stderr" &
    server=$!
    base=""
    for _ in $(seq 1 600); do
        base="$(sed -n 's|^listening on \(http://127\.0\.0\.1:[0-9]*\)$|\1|p' "$work/stdout")"
        [[ -n "$base" ]] && break
        if ! kill -0 "$server" 2>/dev/null; then
            echo "run.sh: the server exited before listening:" >&2
            cat "$work/stderr" >&2
            exit 1
        fi
        sleep 0.1
    done
    [[ -n "$base" ]] || { echo "run.sh: the server did not listen within 60 s" >&2; exit 1; }
    # Only the loopback server is contacted: no proxy, whatever the environment says.
    unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
    export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
}
