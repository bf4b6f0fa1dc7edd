#!/bin/sh
# Idle cost with many backends (issue 19 §7): CPU over 30 s, RSS, /status
# size and time, then RSS after a reload down to 2 backends.
#   scripts/measure-backends.sh [BINARY] [BACKENDS]
set -eu
BIN=${1:-target/release/corelb}
N=${2:-10000}
DIR=$(mktemp -d)
PORT=$((20000 + $$ % 20000)); ADMIN=$((PORT + 1))
gen() { # $1 backends: all on ports nobody listens on
    printf 'listen = "127.0.0.1:%s"\nadmin = "127.0.0.1:%s"\n\n[[pools]]\nname = "default"\nbackends = [\n' "$PORT" "$ADMIN"
    i=0; while [ $i -lt "$1" ]; do
        printf '  { addr = "127.0.%d.%d:9" },\n' $((i / 250 + 1)) $((i % 250 + 1)); i=$((i + 1)); done
    printf ']\n'
}
gen "$N" > "$DIR/corelb.toml"
"$BIN" --config "$DIR/corelb.toml" --threads 2 --no-pin >"$DIR/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
ticks() { awk '{print $14 + $15}' /proc/$PID/stat; }
rss() { awk '/VmRSS/ {print $2 / 1024 " MB"}' /proc/$PID/status; }
sleep 10
echo "RSS after 10 s: $(rss)"
t0=$(ticks); sleep 30; t1=$(ticks)
echo "CPU over 30 s: $(echo "$t0 $t1 $(getconf CLK_TCK)" | awk '{printf "%.2f%% of a core", ($2 - $1) / $3 / 30 * 100}')"
echo "RSS after 40 s: $(rss)"
for url in /status "/status?backends=1&limit=100"; do
    curl -s -o "$DIR/body" -w "GET $url: %{http_code}, %{size_download} bytes, %{time_total} s\n" "http://127.0.0.1:$ADMIN$url"
done
gen 2 > "$DIR/corelb.toml"
kill -HUP $PID
sleep 5
echo "RSS 5 s after reloading to 2 backends: $(rss)"
grep -c "reloaded" "$DIR/log" >/dev/null && echo "reload: $(grep -o 'reloaded[^"]*' "$DIR/log" | tail -1)"
