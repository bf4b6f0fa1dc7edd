#!/usr/bin/env bash
# perf/compare.sh: side-by-side load test of corelb, nginx and HAProxy in
# front of the same nginx backends, on loopback, with wrk.
#
#   perf/compare.sh            # full run: both layouts, 3 rounds, 50/256/2000 connections,
#                              # idle-connection memory at 4 000 connections (~40 min)
#   perf/compare.sh --quick    # smoke run: both layouts, 1 round, 50 connections, 3 s,
#                              # idle memory at 2 000 connections (~8 min)
#   perf/compare.sh --help     # every flag
#
# See perf/README.md for what the table means and how the peers are tuned.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
CONF_DIR=$SCRIPT_DIR/conf

usage() {
    cat <<'EOF'
Usage: perf/compare.sh [options]

Load-tests corelb, nginx (as a reverse proxy) and HAProxy side by side in
front of two nginx backends (13-byte body; 16 KiB and 1 MiB files), in two CPU layouts
(isolated: the proxy alone on its CPUs; shared: nothing pinned), interleaving
layouts and targets round by round; then measures what an idle kept-alive
client connection costs each proxy in memory. Prints one table per layout,
a summary against the better peer, and the idle-memory table.

Options:
  --quick               1 round, 3 s runs, 50 connections, no many-connections
                        row, idle memory at 2 000 connections (~8 min)
  --build               run `cargo build --release` first (done anyway when
                        target/release/corelb is missing)
  --rounds N            rounds of every measurement; medians are reported [3]
  --duration S          seconds of each measured wrk run [5; quick: 3]
  --warmup S            seconds of the wrk warm-up before each run [1]
  --conns LIST          client connections, comma-separated [50,256; quick: 50]
  --many-conns N        also a 13 B row with N connections; 0 for none
                        [2000; quick: 0]
  --handshakes S        seconds of each TLS handshake run (a new connection per
                        request, full handshakes and resumed ones); 0 to skip
                        [10; quick: 3]
  --handshake-clients N client threads of examples/tls_handshakes.rs [8]
  --idle-conns N        client connections of the memory measurement (plain HTTP
                        and HTTPS, eager and burst); 0 to skip it [4000; quick: 2000];
                        at most (nofile - 1000) / 2: a burst holds two per client
  --memory-only         only the memory measurement (no load rows)
  --sizes LIST          rows: hello (13 B), 16k and/or 1m (1 MiB) over plain HTTP,
                        tls-hello and/or tls-16k over HTTPS (every proxy terminates TLS
                        with the same ECDSA P-256 certificate; wrk keeps connections
                        alive) [hello,16k,1m,tls-hello,tls-16k]
  --layouts LIST        isolated and/or shared [isolated,shared]
  --threads N           worker threads of every proxy [1]
  --scale               add the corelb scaling row (isolated layout, 13 B)
  --scale-threads N     threads of the corelb scaling row [2 x --threads]
  --scale-cpus LIST     CPUs of the corelb scaling row [--proxy-cpus if it has
                        enough CPUs, else all CPUs]
  --proxy-cpus LIST     isolated layout: CPUs of the proxy under test
                        (taskset -c syntax)
  --backend-cpus LIST   isolated layout: CPUs of the two nginx backends
  --wrk-cpus LIST       isolated layout: CPUs of wrk
  --wrk-threads N       wrk threads [number of --wrk-cpus]
  --upstream-keepalive N
                        corelb --upstream-keepalive, idle upstream connections
                        kept per worker [1024, as nginx's `keepalive 1024`]
  --baseline BIN        also measure another corelb binary (e.g. the build of an
                        earlier commit) as a target of its own, same flags and
                        layouts, interleaved with the rest; its rows show req/s
                        and CPU against this corelb's (a before/after in one run)
  --port-base P         first of the 127.0.0.1 ports used (P..P+19) [28400, below the
                        kernel's ephemeral port range]
  --out DIR             results directory [perf/results/<timestamp>]
  -h, --help            this help

Layouts. isolated: on 2 CPUs, wrk and backends on CPU 0 and the proxy alone
on CPU 1; with at least threads+2 CPUs, wrk on 0, backends on 1, the proxy on
2..(2+threads-1). shared: every process (wrk, backends, proxy) may run on
every CPU, as on a machine nobody tuned. Processes are moved between the
layouts with taskset, so both are measured on the same running proxies.
EOF
}

die() {
    echo "compare.sh: error: $*" >&2
    exit 1
}
note() { echo "compare.sh: $*" >&2; }

# ---------------------------------------------------------------- arguments
QUICK=0
BUILD=0
ROUNDS=""
DURATION=""
WARMUP=""
CONNS=""
SIZES="hello,16k,1m,tls-hello,tls-16k"
LAYOUTS="isolated,shared"
MANY_CONNS=""
IDLE_CONNS=""
HANDSHAKE_SECS=""
HANDSHAKE_CLIENTS=8
THREADS=1
SCALE_THREADS=""
SCALE_CPUS=""
SCALE=0
PROXY_CPUS=""
BACKEND_CPUS=""
WRK_CPUS=""
WRK_THREADS=""
UPSTREAM_KEEPALIVE=1024
PORT_BASE=28400
OUT=""
BASELINE=""
MEMORY_ONLY=0

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --memory-only) MEMORY_ONLY=1 ;;
        --build) BUILD=1 ;;
        --rounds) need_arg "$@"; ROUNDS=$2; shift ;;
        --duration) need_arg "$@"; DURATION=$2; shift ;;
        --warmup) need_arg "$@"; WARMUP=$2; shift ;;
        --conns) need_arg "$@"; CONNS=$2; shift ;;
        --sizes) need_arg "$@"; SIZES=$2; shift ;;
        --layouts) need_arg "$@"; LAYOUTS=$2; shift ;;
        --many-conns) need_arg "$@"; MANY_CONNS=$2; shift ;;
        --idle-conns) need_arg "$@"; IDLE_CONNS=$2; shift ;;
        --handshakes) need_arg "$@"; HANDSHAKE_SECS=$2; shift ;;
        --handshake-clients) need_arg "$@"; HANDSHAKE_CLIENTS=$2; shift ;;
        --threads) need_arg "$@"; THREADS=$2; shift ;;
        --scale-threads) need_arg "$@"; SCALE_THREADS=$2; shift ;;
        --scale-cpus) need_arg "$@"; SCALE_CPUS=$2; shift ;;
        --scale) SCALE=1 ;;
        --proxy-cpus) need_arg "$@"; PROXY_CPUS=$2; shift ;;
        --backend-cpus) need_arg "$@"; BACKEND_CPUS=$2; shift ;;
        --wrk-cpus) need_arg "$@"; WRK_CPUS=$2; shift ;;
        --wrk-threads) need_arg "$@"; WRK_THREADS=$2; shift ;;
        --upstream-keepalive) need_arg "$@"; UPSTREAM_KEEPALIVE=$2; shift ;;
        --port-base) need_arg "$@"; PORT_BASE=$2; shift ;;
        --baseline) need_arg "$@"; BASELINE=$2; shift ;;
        --out) need_arg "$@"; OUT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    : "${ROUNDS:=1}" "${DURATION:=3}" "${WARMUP:=1}" "${CONNS:=50}" "${MANY_CONNS:=0}" "${IDLE_CONNS:=2000}" "${HANDSHAKE_SECS:=3}"
else
    : "${ROUNDS:=3}" "${DURATION:=5}" "${WARMUP:=1}" "${CONNS:=50,256}" "${MANY_CONNS:=2000}" "${IDLE_CONNS:=4000}" "${HANDSHAKE_SECS:=10}"
fi
: "${SCALE_THREADS:=$((2 * THREADS))}"

is_pos_int() { [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]]; }
for v in ROUNDS DURATION WARMUP THREADS SCALE_THREADS UPSTREAM_KEEPALIVE PORT_BASE HANDSHAKE_CLIENTS; do
    is_pos_int "${!v}" || die "--$(tr '[:upper:]_' '[:lower:]-' <<<"$v") must be a positive integer, not '${!v}'"
done
[[ $PORT_BASE -ge 1024 && $PORT_BASE -le 65515 ]] || die "--port-base must be in 1024..65515"
[[ -z $BASELINE || -x $BASELINE ]] || die "--baseline $BASELINE: not an executable file"
IFS=', ' read -ra CONNS_LIST <<<"$CONNS"
IFS=', ' read -ra SIZES_LIST <<<"$SIZES"
for c in "${CONNS_LIST[@]}"; do is_pos_int "$c" || die "bad --conns entry '$c'"; done
for s in "${SIZES_LIST[@]}"; do
    [[ $s =~ ^((tls-)?(hello|16k)|1m)$ ]] || die "bad --sizes entry '$s' (hello, 16k, 1m, tls-hello or tls-16k)"
done
[[ ${#CONNS_LIST[@]} -gt 0 && ${#SIZES_LIST[@]} -gt 0 ]] || die "--conns and --sizes must not be empty"
IFS=', ' read -ra LAYOUT_LIST <<<"$LAYOUTS"
for l in "${LAYOUT_LIST[@]}"; do [[ $l == isolated || $l == shared ]] || die "bad --layouts entry '$l' (isolated or shared)"; done
[[ ${#LAYOUT_LIST[@]} -gt 0 ]] || die "--layouts must not be empty"
for v in MANY_CONNS IDLE_CONNS HANDSHAKE_SECS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "--$(tr '[:upper:]_' '[:lower:]-' <<<"$v") must be a number, not '${!v}'"
done
if [[ $MEMORY_ONLY == 1 ]]; then
    [[ $IDLE_CONNS -gt 0 ]] || die "--memory-only with --idle-conns 0 measures nothing"
    SIZES_LIST=() # no load rows (the memory rows use the 13 B backend)
    HANDSHAKE_SECS=0 # nor handshake rows
fi

# Many connections (and the idle-memory clients) need descriptors: raise the
# soft limit to the hard one. Each proxy needs one per client connection
# plus its upstream ones, and wrk one per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
# The burst pattern of the memory rows puts every client's request in
# flight at once: a proxy then holds an upstream connection per client
# too, two descriptors each (nginx resets clients past its limit).
for v in MANY_CONNS IDLE_CONNS; do
    per=1
    [[ $v == IDLE_CONNS ]] && per=2
    if [[ ${!v} -gt 0 && $((per * ${!v})) -gt $((NOFILE - 1000)) ]]; then
        die "--$(tr '[:upper:]_' '[:lower:]-' <<<"$v") ${!v} needs more descriptors than the limit of $NOFILE allows (ulimit -Hn)"
    fi
done

# ------------------------------------------------------------------- tools
# command -> Debian package
declare -A PKG_OF=(
    [wrk]=wrk [nginx]=nginx [haproxy]=haproxy [curl]=curl
    [taskset]=util-linux [getconf]=libc-bin [pgrep]=procps [awk]=mawk
    [python3]=python3 [openssl]=openssl
)
install_missing() {
    local cmd missing=()
    for cmd in "${!PKG_OF[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_OF[$cmd]}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}) and not root: install them first"
        sudo=(sudo)
    fi
    note "installing ${missing[*]} from Debian's packages"
    # Keep the packages' postinst from starting the system nginx/haproxy
    # services: only our own instances may run.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    "${sudo[@]}" apt-get update -q || rc=$?
    if [[ $rc == 0 ]]; then
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    fi
    [[ $made_policy == 0 ]] || "${sudo[@]}" rm -f "$policy"
    [[ $rc == 0 ]] || die "apt-get failed installing ${missing[*]}"
}
install_missing

CORELB_SRC=${CARGO_TARGET_DIR:-$REPO/target}/release/corelb
# The handshake rows' client (examples/tls_handshakes.rs).
HANDSHAKER_SRC=${CARGO_TARGET_DIR:-$REPO/target}/release/examples/tls_handshakes
if [[ $BUILD == 1 || ! -x $CORELB_SRC || ! -x $HANDSHAKER_SRC ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: cannot build corelb"
    note "building corelb (cargo build --release, and the handshake client)"
    (cd "$REPO" && cargo build --release && cargo build --release --example tls_handshakes) ||
        die "cargo build --release failed"
fi
[[ -x $CORELB_SRC ]] || die "$CORELB_SRC missing after the build"

# ------------------------------------------------------------- CPU layout
expand_cpus() { # "0-2,5" -> "0 1 2 5"
    local part lo hi out=()
    for part in ${1//,/ }; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[2]}
            while [[ $lo -le $hi ]]; do out+=("$lo"); lo=$((lo + 1)); done
        elif [[ $part =~ ^[0-9]+$ ]]; then
            out+=("$part")
        else
            die "bad CPU list '$1'"
        fi
    done
    echo "${out[*]}"
}
count_cpus() { local a; read -ra a <<<"$(expand_cpus "$1")"; echo "${#a[@]}"; }

cpu_range() { if [[ $1 == "$2" ]]; then echo "$1"; else echo "$1-$2"; fi; }

NCPU=$(nproc)
LAST=$((NCPU - 1))
if [[ $NCPU -ge $((THREADS + 2)) && $NCPU -gt 2 ]]; then
    : "${WRK_CPUS:=0}" "${BACKEND_CPUS:=1}" "${PROXY_CPUS:=$(cpu_range 2 $((THREADS + 1)))}"
elif [[ $NCPU -ge 2 ]]; then
    : "${WRK_CPUS:=0}" "${BACKEND_CPUS:=0}" "${PROXY_CPUS:=$(cpu_range 1 "$LAST")}"
else
    : "${WRK_CPUS:=0}" "${BACKEND_CPUS:=0}" "${PROXY_CPUS:=0}"
    note "warning: 1 CPU: wrk, backends and proxy share it; numbers are only indicative"
fi
for v in WRK_CPUS BACKEND_CPUS PROXY_CPUS; do expand_cpus "${!v}" >/dev/null; done
if [[ -z $SCALE_CPUS ]]; then
    if [[ $(count_cpus "$PROXY_CPUS") -ge $SCALE_THREADS ]]; then
        SCALE_CPUS=$PROXY_CPUS
    else
        SCALE_CPUS=$(cpu_range 0 "$LAST")
    fi
fi
expand_cpus "$SCALE_CPUS" >/dev/null
: "${WRK_THREADS:=$(count_cpus "$WRK_CPUS")}"
is_pos_int "$WRK_THREADS" || die "--wrk-threads must be a positive integer"
if [[ $(count_cpus "$PROXY_CPUS") -lt $THREADS ]]; then
    note "warning: $THREADS proxy threads on $(count_cpus "$PROXY_CPUS") CPU(s) ($PROXY_CPUS): oversubscribed"
fi
ALL_CPUS=$(cpu_range 0 "$LAST")

# --------------------------------------------------------------- workspace
STAMP=$(date +%Y%m%d-%H%M%S)
: "${OUT:=$SCRIPT_DIR/results/$STAMP}"
mkdir -p "$OUT/raw" "$OUT/logs" "$OUT/configs"
OUT=$(cd "$OUT" && pwd)
RUNS_TSV=$OUT/runs.tsv
TABLE=$OUT/table.md

# Runtime files live in a private temp dir readable by nginx's unprivileged
# workers (the 16 KiB and 1 MiB files are served from it).
WORK=$(mktemp -d /tmp/corelb-perf.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/www"
head -c 16384 /dev/urandom >"$WORK/www/16k.bin"
head -c 1048576 /dev/urandom >"$WORK/www/1m.bin"
chmod 644 "$WORK/www/16k.bin" "$WORK/www/1m.bin"
# A private copy: others may rebuild target/ while we measure.
cp "$CORELB_SRC" "$WORK/corelb"
CORELB=$WORK/corelb
cp "$HANDSHAKER_SRC" "$WORK/tls_handshakes"
# One ECDSA P-256 certificate every proxy serves over TLS (HAProxy wants
# the key in the same file).
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost >/dev/null 2>&1 || die "openssl cannot make the test certificate"
cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/both.pem"
chmod 644 "$WORK/tls/"*.pem
if [[ -n $BASELINE ]]; then
    cp "$BASELINE" "$WORK/corelb-base"
    BASELINE_VERSION=$BASELINE
fi
CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------- process tracking
STARTED=() # PIDs of every process this script started, in start order

proc_alive() { # our child counts as gone once it is a zombie
    local s
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}

stop_pid() {
    local pid=$1 i kids
    proc_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        proc_alive "$pid" || break
        sleep 0.1
    done
    if proc_alive "$pid"; then
        note "PID $pid did not stop on TERM: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # nginx workers are the master's children: make sure none outlives it.
    for i in $kids; do
        if proc_alive "$i"; then kill -KILL "$i" 2>/dev/null || true; fi
    done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_pid "${STARTED[$i]}"
    done
    if [[ -d ${WORK:-} ]]; then
        cp "$WORK"/*.log "$OUT/logs/" 2>/dev/null || true
        rm -rf "$WORK"
    fi
    if [[ $rc != 0 ]]; then
        note "stopped (exit $rc); partial results in $OUT"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg NAME CPUS CMD... : start CMD pinned to CPUS, log to $WORK/NAME.log,
# remember its PID in $LAST_PID and in STARTED.
LAST_PID=""
start_bg() {
    local name=$1 cpus=$2
    shift 2
    taskset -c "$cpus" "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
}

# Stop one started process and forget it.
stop_started() {
    local pid=$1 keep=() p
    stop_pid "$pid"
    for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_http NAME PID URL EXPECTED_BYTES: until URL answers 200 with the
# expected body size; fails clearly if the process dies or it never does.
wait_http() {
    local name=$1 pid=$2 url=$3 want=$4 i code="" size="" out
    for ((i = 0; i < 100; i++)); do
        if ! proc_alive "$pid"; then
            tail -n 20 "$WORK/$name.log" >&2 || true
            die "$name exited during start-up (log above, in $OUT/logs/$name.log)"
        fi
        if out=$(curl -sk -o /dev/null --max-time 2 -w '%{http_code} %{size_download}' "$url"); then
            read -r code size <<<"$out"
            if [[ $code == 200 && $size == "$want" ]]; then return 0; fi
        fi
        sleep 0.1
    done
    tail -n 20 "$WORK/$name.log" >&2 || true
    die "$name does not answer 200 with $want bytes at $url (last: HTTP ${code:-none}, ${size:-0} bytes)"
}

fill() { # fill TEMPLATE OUTPUT KEY=VALUE...
    local tpl=$1 out=$2 kv expr=()
    shift 2
    for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${expr[@]}" "$tpl" >"$out"
    if grep -q '@[A-Z_]*@' "$out"; then die "unfilled placeholder in $out"; fi
    cp "$out" "$OUT/configs/"
}

start_nginx() { # NAME TEMPLATE CPUS KEY=VALUE...
    local name=$1 tpl=$2 cpus=$3
    shift 3
    mkdir -p "$WORK/$name-tmp"
    fill "$tpl" "$WORK/$name.conf" DIR="$WORK" NAME="$name" "$@"
    nginx -t -q -p "$WORK" -c "$WORK/$name.conf" -e "$WORK/$name.error.log" >"$WORK/$name.log" 2>&1 ||
        { cat "$WORK/$name.log" >&2; die "nginx rejects $WORK/$name.conf"; }
    start_bg "$name" "$cpus" nginx -p "$WORK" -c "$WORK/$name.conf" -e "$WORK/$name.error.log"
}

start_haproxy() { # NAME CPUS TEMPLATE KEY=VALUE...
    local name=$1 cpus=$2 tpl=$3
    shift 3
    fill "$tpl" "$WORK/$name.cfg" "$@"
    haproxy -c -q -f "$WORK/$name.cfg" >"$WORK/$name.log" 2>&1 ||
        { cat "$WORK/$name.log" >&2; die "haproxy rejects $WORK/$name.cfg"; }
    start_bg "$name" "$cpus" haproxy -db -f "$WORK/$name.cfg"
}

start_corelb() { # NAME CPUS THREADS PORT BACKEND_PORT PIN(pin|no-pin) [BINARY] [tls]
    local name=$1 cpus=$2 threads=$3 port=$4 bport=$5 pin=$6 bin=${7:-$CORELB} tls=${8:-}
    local args=(--listen "127.0.0.1:$port" --backend "127.0.0.1:$bport"
        --threads "$threads" "--$pin" --upstream-keepalive "$UPSTREAM_KEEPALIVE")
    if [[ $tls == tls ]]; then
        args[1]="127.0.0.1:$port,tls"
        args+=(--tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem")
    fi
    echo "taskset -c $cpus corelb ${args[*]}" >"$OUT/configs/$name.cmdline"
    start_bg "$name" "$cpus" "$bin" "${args[@]}"
}

# CPU ticks of PID and its direct children (nginx workers): "all user",
# all = utime + stime (the kernel's work for the process included), user =
# utime alone (the proxy's own code).
tree_ticks() {
    local root=$1 total=0 user=0 p s f
    for p in $root $(pgrep -P "$root" 2>/dev/null || true); do
        { read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
        s=${s##*) }
        read -ra f <<<"$s"
        # f[0] is field 3 (state); utime is field 14, stime field 15.
        total=$((total + f[11] + f[12]))
        user=$((user + f[11]))
    done
    echo "$total $user"
}

# parse_wrk FILE -> "requests req_per_s p50_us p99_us errors"
parse_wrk() {
    awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return (v + 0) * 1000
            if (v ~ /m$/)  return (v + 0) * 60e6
            if (v ~ /s$/)  return (v + 0) * 1e6
            return v + 0
        }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        / requests in / { req = $1 }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
        END {
            if (req == "" || rps == "") exit 1
            printf "%d %.2f %.1f %.1f %d\n", req, rps, p50, p99, err
        }' "$1"
}

# ------------------------------------------------------------------- ports
P_BACK_HELLO=$PORT_BASE
P_BACK_16K=$((PORT_BASE + 1))
declare -A PROXY_PORT=(
    [hello.corelb]=$((PORT_BASE + 2)) [hello.nginx]=$((PORT_BASE + 3))
    [hello.haproxy]=$((PORT_BASE + 4)) [hello.corelb2]=$((PORT_BASE + 5))
    [16k.corelb]=$((PORT_BASE + 6)) [16k.nginx]=$((PORT_BASE + 7))
    [16k.haproxy]=$((PORT_BASE + 8)) [16k.corelb2]=$((PORT_BASE + 9))
    [hello.base]=$((PORT_BASE + 10)) [16k.base]=$((PORT_BASE + 11))
    [tls-hello.corelb]=$((PORT_BASE + 12)) [tls-hello.nginx]=$((PORT_BASE + 13))
    [tls-hello.haproxy]=$((PORT_BASE + 14)) [tls-16k.corelb]=$((PORT_BASE + 15))
    [tls-16k.nginx]=$((PORT_BASE + 16)) [tls-16k.haproxy]=$((PORT_BASE + 17))
    [tls-hello.base]=$((PORT_BASE + 18))
    # The 1 MiB phase reuses the 16 KiB phase's ports: phases never overlap.
    [1m.corelb]=$((PORT_BASE + 6)) [1m.nginx]=$((PORT_BASE + 7))
    [1m.haproxy]=$((PORT_BASE + 8)) [1m.base]=$((PORT_BASE + 11))
)
# A listening port inside the ephemeral range can be taken at any moment by
# the local end of an outgoing connection (wrk's, a proxy's), and the next
# proxy then fails to bind.
read -r EPH_LO EPH_HI </proc/sys/net/ipv4/ip_local_port_range
if [[ $PORT_BASE -le $EPH_HI && $((PORT_BASE + 19)) -ge $EPH_LO ]]; then
    note "warning: ports $PORT_BASE..$((PORT_BASE + 19)) overlap the ephemeral range $EPH_LO..$EPH_HI; a bind may fail mid-run"
fi
for ((p = PORT_BASE; p <= PORT_BASE + 19; p++)); do
    if port_busy "$p"; then die "port 127.0.0.1:$p is in use: pick another --port-base"; fi
done
declare -A PATH_OF=([hello]=/ [16k]=/16k.bin [1m]=/1m.bin [tls-hello]=/ [tls-16k]=/16k.bin)
declare -A BYTES_OF=([hello]=13 [16k]=16384 [1m]=1048576 [tls-hello]=13 [tls-16k]=16384)
declare -A BACKEND_PORT_OF=([hello]=$P_BACK_HELLO [16k]=$P_BACK_16K [1m]=$P_BACK_16K
    [tls-hello]=$P_BACK_HELLO [tls-16k]=$P_BACK_16K)
declare -A LABEL_OF=([hello]="13 B" [16k]="16 KiB" [1m]="1 MiB" [tls-hello]="HTTPS 13 B" [tls-16k]="HTTPS 16 KiB")
is_tls() { [[ $1 == tls-* ]]; }
scheme_of() { if is_tls "$1"; then echo https; else echo http; fi; }

# ------------------------------------------------------------------ plan
# Targets measured in each round and layout, in this order; corelb2 is the
# scaling row (corelb with SCALE_THREADS threads, pinned), isolated layout
# and small body only. `direct` (wrk on the backend itself, the ceiling) is
# measured in the isolated layout only: it is the same backend either way.
targets_for() { # SIZE LAYOUT
    local t=(corelb nginx haproxy)
    if is_tls "$1"; then echo "${t[*]}"; return; fi
    if [[ $2 == isolated ]]; then t=(direct "${t[@]}"); fi
    if [[ -n $BASELINE ]]; then t+=(base); fi
    if [[ $SCALE == 1 && $1 == hello && $2 == isolated ]]; then t+=(corelb2); fi
    echo "${t[*]}"
}
# Connection counts of SIZE: the many-connections row is 13 B only.
conns_for() { # SIZE
    local c=("${CONNS_LIST[@]}")
    if [[ $MANY_CONNS -gt 0 && $1 == hello ]]; then c+=("$MANY_CONNS"); fi
    echo "${c[*]}"
}
TOTAL_RUNS=0
for s in "${SIZES_LIST[@]}"; do
    read -ra cl <<<"$(conns_for "$s")"
    for l in "${LAYOUT_LIST[@]}"; do
        read -ra tl <<<"$(targets_for "$s" "$l")"
        TOTAL_RUNS=$((TOTAL_RUNS + ROUNDS * ${#cl[@]} * ${#tl[@]}))
    done
done
IDLE_EST=0
# Two patterns, up to 4 targets, plain HTTP then HTTPS (handshakes take longer).
[[ $IDLE_CONNS == 0 ]] || IDLE_EST=$((2 * 4 * (17 + IDLE_CONNS / 1000) + 2 * 4 * (17 + IDLE_CONNS / 300)))
EST=$((TOTAL_RUNS * (DURATION + WARMUP + 1) + ${#SIZES_LIST[@]} * 5 + IDLE_EST + ROUNDS * 6 * (HANDSHAKE_SECS + 1)))

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -srm), $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "corelb: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown) ($CORELB_SRC)"
    echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "haproxy: $(haproxy -v | head -n1)"
    echo "wrk: $(wrk -v 2>&1 | head -n1)"
    echo "layouts: ${LAYOUT_LIST[*]}; isolated = proxy CPUs $PROXY_CPUS ($THREADS thread(s)), backends CPUs $BACKEND_CPUS, wrk CPUs $WRK_CPUS ($WRK_THREADS thread(s)); shared = every process on CPUs $ALL_CPUS"
    if [[ $SCALE == 1 ]]; then echo "scaling row: CPUs $SCALE_CPUS ($SCALE_THREADS threads, pinned)"; fi
    if [[ -n $BASELINE ]]; then echo "baseline: $BASELINE ($BASELINE_VERSION), the same flags as corelb"; fi
    echo "runs: $ROUNDS round(s) x ${DURATION}s (+${WARMUP}s warm-up), conns ${CONNS_LIST[*]} (13 B also $MANY_CONNS), sizes ${SIZES_LIST[*]}, idle connections $IDLE_CONNS, clk_tck $CLK_TCK, nofile $NOFILE"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2
read -r LOAD1 _ </proc/loadavg
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 0.5) }'; then
    note "warning: load average is $LOAD1: something else is running; numbers will be noisy (CPU µs/req suffers least)"
fi
note "$TOTAL_RUNS measured runs, about $((EST / 60)) min $((EST % 60)) s; results in $OUT"

printf 'layout\tsize\tconns\ttarget\tround\trequests\trps\tp50_us\tp99_us\terrors\tcpu_ticks\tcpu_us_per_req\tuser_ticks\tuser_us_per_req\tsys_us_per_req\n' >"$RUNS_TSV"

# ---------------------------------------------------------------- layouts
# Move PID, all its threads and its children's (nginx's workers) to CPUS.
set_cpus() { # CPUS PID
    local p
    for p in $2 $(pgrep -P "$2" 2>/dev/null || true); do
        taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
    done
}
declare -A PID_OF=()
BACKEND_PIDS=()
CURRENT_LAYOUT=""
# Put the backends and the side-by-side proxies where LAYOUT says. The
# scaling row's corelb is never moved: its workers are pinned one per CPU.
apply_layout() { # LAYOUT
    [[ $1 != "$CURRENT_LAYOUT" ]] || return 0
    local proxy_cpus=$ALL_CPUS backend_cpus=$ALL_CPUS p t
    if [[ $1 == isolated ]]; then
        proxy_cpus=$PROXY_CPUS backend_cpus=$BACKEND_CPUS
    fi
    for p in "${BACKEND_PIDS[@]}"; do set_cpus "$backend_cpus" "$p"; done
    for t in corelb nginx haproxy base; do
        if [[ -n ${PID_OF[$t]:-} ]]; then set_cpus "$proxy_cpus" "${PID_OF[$t]}"; fi
    done
    CURRENT_LAYOUT=$1
}
wrk_cpus_of() { if [[ $1 == isolated ]]; then echo "$WRK_CPUS"; else echo "$ALL_CPUS"; fi; }

# ---------------------------------------------------------------- backends
start_nginx backend-hello "$CONF_DIR/backend-hello.nginx.conf" "$ALL_CPUS" PORT="$P_BACK_HELLO"
BACKEND_PIDS+=("$LAST_PID")
wait_http backend-hello "$LAST_PID" "http://127.0.0.1:$P_BACK_HELLO/" 13
start_nginx backend-16k "$CONF_DIR/backend-16k.nginx.conf" "$ALL_CPUS" PORT="$P_BACK_16K"
BACKEND_PIDS+=("$LAST_PID")
wait_http backend-16k "$LAST_PID" "http://127.0.0.1:$P_BACK_16K/16k.bin" 16384
note "backends up on 127.0.0.1:$P_BACK_HELLO (13 B) and :$P_BACK_16K (16 KiB, 1 MiB)"

# --------------------------------------------------------------- measuring
RUN_NO=0

measure() { # LAYOUT SIZE CONNS TARGET ROUND
    local layout=$1 size=$2 conns=$3 target=$4 round=$5 port pid=0 url raw t0=0 t1=0 u0=0 u1=0 stats
    local req rps p50 p99 err ticks cpu user_ticks user_cpu sys_cpu wrk_cpus
    if [[ $target == direct ]]; then
        port=${BACKEND_PORT_OF[$size]}
    else
        port=${PROXY_PORT[$size.$target]}
        pid=${PID_OF[$target]}
    fi
    url="$(scheme_of "$size")://127.0.0.1:$port${PATH_OF[$size]}"
    raw="$OUT/raw/$layout-$size-c$conns-$target-r$round.txt"
    RUN_NO=$((RUN_NO + 1))
    apply_layout "$layout"
    wrk_cpus=$(wrk_cpus_of "$layout")

    taskset -c "$wrk_cpus" wrk -t"$WRK_THREADS" -c"$conns" -d"${WARMUP}s" "$url" >"$raw.warmup" 2>&1 &
    STARTED+=("$!")
    wait "$!" || die "wrk warm-up against $target failed: $(cat "$raw.warmup")"
    STARTED=("${STARTED[@]:0:${#STARTED[@]}-1}")

    [[ $pid == 0 ]] || read -r t0 u0 <<<"$(tree_ticks "$pid")"
    taskset -c "$wrk_cpus" wrk --latency -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" --timeout 10s "$url" >"$raw" 2>&1 &
    STARTED+=("$!")
    wait "$!" || die "wrk against $target failed: $(cat "$raw")"
    STARTED=("${STARTED[@]:0:${#STARTED[@]}-1}")
    [[ $pid == 0 ]] || read -r t1 u1 <<<"$(tree_ticks "$pid")"

    stats=$(parse_wrk "$raw") || die "cannot read wrk's output in $raw"
    read -r req rps p50 p99 err <<<"$stats"
    ticks=$((t1 - t0))
    user_ticks=$((u1 - u0))
    if [[ $pid == 0 || $req -eq 0 ]]; then
        cpu=nan user_cpu=nan sys_cpu=nan
    else
        cpu=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
        user_cpu=$(awk -v t="$user_ticks" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
        sys_cpu=$(awk -v t="$((ticks - user_ticks))" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$layout" "$size" "$conns" "$target" "$round" "$req" "$rps" "$p50" "$p99" "$err" "$ticks" "$cpu" \
        "$user_ticks" "$user_cpu" "$sys_cpu" >>"$RUNS_TSV"
    printf 'compare.sh: [%d/%d] %-8s %-5s c=%-4s %-8s round %d: %9.0f req/s  p99 %8.0f us  CPU %s us/req (user %s)%s\n' \
        "$RUN_NO" "$TOTAL_RUNS" "$layout" "$size" "$conns" "$target" "$round" "$rps" "$p99" "$cpu" "$user_cpu" \
        "$([[ $err == 0 ]] || echo "  ERRORS $err")" >&2
}

# Start corelb, nginx and HAProxy in front of the backend of SIZE (and the
# scaling row's corelb if asked), on every CPU; wait until each answers.
start_proxies() { # SIZE
    local size=$1 bport=${BACKEND_PORT_OF[$1]} path=${PATH_OF[$1]} t name tls="" suffix=""
    if is_tls "$size"; then tls=tls suffix=-tls; fi
    start_corelb "corelb-$size" "$ALL_CPUS" "$THREADS" "${PROXY_PORT[$size.corelb]}" "$bport" no-pin "$CORELB" "$tls"
    PID_OF[corelb]=$LAST_PID
    start_nginx "nginx-$size" "$CONF_DIR/proxy$suffix.nginx.conf" "$ALL_CPUS" \
        THREADS="$THREADS" PORT="${PROXY_PORT[$size.nginx]}" BACKEND_PORT="$bport" TLS_DIR="$WORK/tls"
    PID_OF[nginx]=$LAST_PID
    start_haproxy "haproxy-$size" "$ALL_CPUS" "$CONF_DIR/haproxy$suffix.cfg" \
        THREADS="$THREADS" PORT="${PROXY_PORT[$size.haproxy]}" BACKEND_PORT="$bport" TLS_DIR="$WORK/tls"
    PID_OF[haproxy]=$LAST_PID
    if [[ -n $BASELINE && -z $tls ]]; then
        start_corelb "base-$size" "$ALL_CPUS" "$THREADS" "${PROXY_PORT[$size.base]}" "$bport" no-pin "$WORK/corelb-base"
        PID_OF[base]=$LAST_PID
    fi
    if [[ $SCALE == 1 && $size == hello && " ${LAYOUT_LIST[*]} " == *" isolated "* ]]; then
        start_corelb "corelb${SCALE_THREADS}t-$size" "$SCALE_CPUS" "$SCALE_THREADS" "${PROXY_PORT[$size.corelb2]}" "$bport" pin
        PID_OF[corelb2]=$LAST_PID
    fi
    for t in corelb nginx haproxy base corelb2; do
        [[ -n ${PID_OF[$t]:-} ]] || continue
        name="$t-$size"
        [[ $t != corelb2 ]] || name="corelb${SCALE_THREADS}t-$size"
        wait_http "$name" "${PID_OF[$t]}" "$(scheme_of "$size")://127.0.0.1:${PROXY_PORT[$size.$t]}$path" "${BYTES_OF[$size]}"
    done
    CURRENT_LAYOUT=""
    note "$size: corelb, nginx, haproxy answer 200 with ${BYTES_OF[$size]} bytes"
}

stop_proxies() {
    local t
    for t in corelb2 base haproxy nginx corelb; do
        if [[ -n ${PID_OF[$t]:-} ]]; then
            stop_started "${PID_OF[$t]}"
            unset "PID_OF[$t]"
        fi
    done
}

for size in "${SIZES_LIST[@]}"; do
    read -ra conns_list <<<"$(conns_for "$size")"
    # One set of proxies per body size: each fronts only that size's backend
    # (corelb takes one pool from its flags). Idle proxies cost no CPU.
    # Side by side with nginx and HAProxy, corelb's threads float inside the
    # CPU set as theirs do; the scaling row compares corelb with itself, so
    # it runs as deployed: each worker pinned to one CPU of the set.
    start_proxies "$size"
    for ((round = 1; round <= ROUNDS; round++)); do
        for conns in "${conns_list[@]}"; do
            # Layouts alternate, and so does which one comes first.
            layouts=("${LAYOUT_LIST[@]}")
            if ((round % 2 == 0 && ${#layouts[@]} == 2)); then layouts=("${layouts[1]}" "${layouts[0]}"); fi
            for layout in "${layouts[@]}"; do
                read -ra targets <<<"$(targets_for "$size" "$layout")"
                # Each round starts one target later, so no target always runs
                # first or always follows the same one (the machine drifts).
                for ((i = 0; i < ${#targets[@]}; i++)); do
                    measure "$layout" "$size" "$conns" "${targets[(i + round - 1) % ${#targets[@]}]}" "$round"
                done
            done
        done
    done
    stop_proxies
done

# ------------------------------------------------------------ idle memory
# What IDLE_CONNS client connections cost each proxy in resident memory,
# with their requests in flight and then kept alive and silent, over plain
# HTTP and over HTTPS (perf/idle_clients.py --tls: a full handshake per
# connection, the same certificate for every proxy), in the two patterns of
# perf/idle_clients.py (eager: each client sends as soon as it is connected;
# burst: all connect, then all send at once). Fresh proxies (so no earlier
# load has left memory to reuse), one at a time, shared layout, in front of
# the 13 B backend.
IDLE_TSV=$OUT/idle.tsv
start_proxy_of() { # NAME SIZE TARGET CPUS: a fresh one, in front of SIZE's backend (TARGET base: the --baseline corelb)
    local name=$1 size=$2 t=$3 cpus=$4 tls="" suffix=""
    local bport=${BACKEND_PORT_OF[$size]} port=${PROXY_PORT[$size.$3]}
    if is_tls "$size"; then tls=tls suffix=-tls; fi
    case $t in
        corelb) start_corelb "$name" "$cpus" "$THREADS" "$port" "$bport" no-pin "$CORELB" "$tls" ;;
        base) start_corelb "$name" "$cpus" "$THREADS" "$port" "$bport" no-pin "$WORK/corelb-base" "$tls" ;;
        nginx) start_nginx "$name" "$CONF_DIR/proxy$suffix.nginx.conf" "$cpus" \
            THREADS="$THREADS" PORT="$port" BACKEND_PORT="$bport" TLS_DIR="$WORK/tls" ;;
        haproxy) start_haproxy "$name" "$cpus" "$CONF_DIR/haproxy$suffix.cfg" \
            THREADS="$THREADS" PORT="$port" BACKEND_PORT="$bport" TLS_DIR="$WORK/tls" ;;
    esac
    wait_http "$name" "$LAST_PID" "$(scheme_of "$size")://127.0.0.1:$port/" "${BYTES_OF[$size]}"
}
per_conn() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (a - b) / n }'; }
printf 'target\tprotocol\tpattern\trss_before_kib\trss_at_once_kib\trss_2s_kib\trss_10s_kib\trss_peak_kib\tconnections\tkib_at_once\tkib_2s\tkib_10s\tkib_peak\n' >"$IDLE_TSV"
if [[ $IDLE_CONNS -gt 0 ]]; then
    apply_layout shared
    for size in hello tls-hello; do
        tls_flag=() protocol=http
        if is_tls "$size"; then tls_flag=(--tls) protocol=https; fi
        idle_targets=(corelb)
        if [[ -n $BASELINE ]]; then
            # An older baseline may predate TLS termination.
            if [[ -z ${tls_flag[*]} ]] || "$WORK/corelb-base" --help 2>&1 | grep -q -- --tls-cert; then
                idle_targets+=(base)
            else
                note "memory: the baseline has no --tls-cert: no HTTPS rows for it"
            fi
        fi
        idle_targets+=(nginx haproxy)
        for pattern in eager burst; do
            for t in "${idle_targets[@]}"; do
                start_proxy_of "idle-$size-$t" "$size" "$t" "$ALL_CPUS"
                pid=$LAST_PID
                # shellcheck disable=SC2046 # the PIDs are words
                line=$(python3 "$SCRIPT_DIR/idle_clients.py" --pattern "$pattern" "${tls_flag[@]}" "${PROXY_PORT[$size.$t]}" "$IDLE_CONNS" \
                    "$pid" $(pgrep -P "$pid" || true)) ||
                    die "$protocol $pattern memory measurement against $t failed"
                read -r before once two ten peak n <<<"$line"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$protocol" "$pattern" "$before" "$once" "$two" "$ten" "$peak" "$n" \
                    "$(per_conn "$once" "$before" "$n")" "$(per_conn "$two" "$before" "$n")" "$(per_conn "$ten" "$before" "$n")" \
                    "$(per_conn "$peak" "$before" "$n")" >>"$IDLE_TSV"
                note "memory: $t, $protocol, $pattern: $n connections, RSS $before -> $once (at once), $two (2 s), $ten (10 s) KiB, peak $peak"
                stop_started "$pid"
            done
        done
    done
fi

# -------------------------------------------------------------- handshakes
# TLS handshakes per second and per CPU-second: examples/tls_handshakes.rs
# (HANDSHAKE_CLIENTS threads on the wrk CPUs) opens a new connection per
# request against each proxy alone on the proxy CPUs (isolated layout),
# full handshakes, then resumed ones; rounds interleave the targets. CPU
# per handshake is the proxy's own (user + system, all its processes).
HANDSHAKE_TSV=$OUT/handshakes.tsv
printf 'round\tmode\ttarget\tconnections\tresumed\terrors\tseconds\tper_s\tcpu_us_per_handshake\n' >"$HANDSHAKE_TSV"
if [[ $HANDSHAKE_SECS -gt 0 ]]; then
    declare -A HS_PID=()
    for t in corelb nginx haproxy; do
        start_proxy_of "handshakes-$t" tls-hello "$t" "$PROXY_CPUS"
        HS_PID[$t]=$LAST_PID
    done
    hs_targets=(corelb nginx haproxy)
    for ((round = 1; round <= ROUNDS; round++)); do
        for mode in full resume; do
            for ((i = 0; i < 3; i++)); do
                t=${hs_targets[(i + round - 1) % 3]}
                resume_arg=()
                [[ $mode == full ]] || resume_arg=(resume)
                read -r c0 _ <<<"$(tree_ticks "${HS_PID[$t]}")"
                line=$(taskset -c "$WRK_CPUS" "$WORK/tls_handshakes" "127.0.0.1:${PROXY_PORT[tls-hello.$t]}" \
                    "$HANDSHAKE_CLIENTS" "$HANDSHAKE_SECS" "${resume_arg[@]}") ||
                    die "the handshake client failed against $t"
                read -r c1 _ <<<"$(tree_ticks "${HS_PID[$t]}")"
                read -r n resumed errors secs <<<"$line"
                awk -v r="$round" -v m="$mode" -v t="$t" -v n="$n" -v res="$resumed" -v e="$errors" -v s="$secs" \
                    -v ticks=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN {
                        cpu = n > 0 ? ticks / hz * 1e6 / n : "nan"
                        printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\n", r, m, t, n, res, e, s, n / s, cpu }' >>"$HANDSHAKE_TSV"
                note "handshakes: round $round, $mode, $t: $line (CPU ticks $((c1 - c0)))"
            done
        done
    done
    for t in corelb nginx haproxy; do stop_started "${HS_PID[$t]}"; done
fi

# ------------------------------------------------------------------ table
# median of the values on stdin ("nan" if none)
median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# median of column COL of the runs of LAYOUT SIZE CONNS TARGET
med() {
    awk -F'\t' -v l="$1" -v s="$2" -v c="$3" -v t="$4" -v k="$5" \
        'NR > 1 && $1 == l && $2 == s && $3 == c && $4 == t && $k != "nan" { print $k }' "$RUNS_TSV" | median
}
fmt_lat() { awk -v v="$1" 'BEGIN { if (v == "nan") print "—"; else if (v < 1000) printf "%.0f µs\n", v; else printf "%.2f ms\n", v / 1000 }'; }
fmt2() { awk -v v="$1" 'BEGIN { if (v == "nan") print "—"; else printf "%.2f\n", v }'; }
fmt_k() { awk -v v="$1" 'BEGIN { if (v == "nan") print "—"; else printf "%.1fk\n", v / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "—"; else printf "%.2f\n", a / b }'; }
better() { # MODE(max|min) A B: the better of two medians, ignoring nan
    awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN {
        if (a == "nan") { print b; exit } if (b == "nan") { print a; exit }
        if (m == "max") print (a > b ? a : b); else print (a < b ? a : b) }'
}
# Columns of runs.tsv.
C_RPS=7 C_P50=8 C_P99=9 C_ERR=10 C_CPU=12 C_USER=14 C_SYS=15

target_label() {
    case $1 in
        direct) echo "direct (no proxy)" ;;
        corelb) echo "**corelb**" ;;
        nginx) echo "nginx" ;;
        haproxy) echo "HAProxy" ;;
        corelb2) echo "corelb, $SCALE_THREADS threads (CPUs $SCALE_CPUS)" ;;
        base) echo "corelb baseline ($BASELINE_VERSION)" ;;
    esac
}
layout_label() {
    if [[ $1 == isolated ]]; then
        echo "isolated layout: proxies ($THREADS worker each) on CPU(s) $PROXY_CPUS, backends on CPU(s) $BACKEND_CPUS, wrk -t$WRK_THREADS on CPU(s) $WRK_CPUS"
    else
        echo "shared layout: nothing pinned (proxies with $THREADS worker each, backends and wrk -t$WRK_THREADS all on CPUs $ALL_CPUS)"
    fi
}
RUN_DATE=$(date -u +%Y-%m-%d)
# "total (user + system)" of TARGET, from the summary's medians R U S T P.
cpu_cell() { echo "$(fmt2 "${T[$1]}") ($(fmt2 "${U[$1]}") + $(fmt2 "${S[$1]}"))"; }

{
    echo "## corelb vs nginx vs HAProxy, $RUN_DATE ($STAMP)"
    echo
    if [[ $MEMORY_ONLY == 0 ]]; then echo "Medians of $ROUNDS round(s) of ${DURATION} s (after ${WARMUP} s warm-up), layouts and targets interleaved, each round starting one target later. Host: $NCPU CPUs, load average $LOAD1 at start."; fi
    [[ $MEMORY_ONLY == 1 ]] || for layout in "${LAYOUT_LIST[@]}"; do
        echo
        echo "### Summary, $layout layout ($RUN_DATE)"
        echo
        echo "$(layout_label "$layout")."
        echo
        echo "| body, conns | corelb req/s | nginx | HAProxy | corelb ÷ better peer | corelb CPU µs/req (user + sys) | nginx | HAProxy | corelb CPU ÷ better peer | corelb p99 | better peer's p99 |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for size in "${SIZES_LIST[@]}"; do
            read -ra conns_list <<<"$(conns_for "$size")"
            for conns in "${conns_list[@]}"; do
                declare -A R=() U=() S=() T=() P=()
                for t in corelb nginx haproxy; do
                    R[$t]=$(med "$layout" "$size" "$conns" "$t" $C_RPS)
                    U[$t]=$(med "$layout" "$size" "$conns" "$t" $C_USER)
                    S[$t]=$(med "$layout" "$size" "$conns" "$t" $C_SYS)
                    T[$t]=$(med "$layout" "$size" "$conns" "$t" $C_CPU)
                    P[$t]=$(med "$layout" "$size" "$conns" "$t" $C_P99)
                done
                best_rps=$(better max "${R[nginx]}" "${R[haproxy]}")
                best_cpu=$(better min "${T[nginx]}" "${T[haproxy]}")
                best_p99=$(better min "${P[nginx]}" "${P[haproxy]}")
                printf '| %s, %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                    "${LABEL_OF[$size]}" "$conns" "$(fmt_k "${R[corelb]}")" "$(fmt_k "${R[nginx]}")" "$(fmt_k "${R[haproxy]}")" \
                    "$(ratio "${R[corelb]}" "$best_rps")" "$(cpu_cell corelb)" "$(cpu_cell nginx)" "$(cpu_cell haproxy)" \
                    "$(ratio "${T[corelb]}" "$best_cpu")" "$(fmt_lat "${P[corelb]}")" "$(fmt_lat "$best_p99")"
                unset R U S T P
            done
        done
        echo
        echo "### Every target, $layout layout ($RUN_DATE)"
        echo
        echo "| body | conns | target | req/s | vs direct | p50 | p99 | proxy CPU µs/req | user | system | req/s vs corelb | CPU vs corelb | errors |"
        echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for size in "${SIZES_LIST[@]}"; do
            read -ra targets <<<"$(targets_for "$size" "$layout")"
            read -ra conns_list <<<"$(conns_for "$size")"
            for conns in "${conns_list[@]}"; do
                d_rps=$(med isolated "$size" "$conns" direct $C_RPS)
                c_rps=$(med "$layout" "$size" "$conns" corelb $C_RPS)
                c_cpu=$(med "$layout" "$size" "$conns" corelb $C_CPU)
                for target in "${targets[@]}"; do
                    rps=$(med "$layout" "$size" "$conns" "$target" $C_RPS)
                    cpu=$(med "$layout" "$size" "$conns" "$target" $C_CPU)
                    errs=$(awk -F'\t' -v l="$layout" -v s="$size" -v c="$conns" -v t="$target" -v k=$C_ERR \
                        'NR > 1 && $1 == l && $2 == s && $3 == c && $4 == t { e += $k } END { print e + 0 }' "$RUNS_TSV")
                    if [[ $target == direct ]]; then
                        vs_rps="—" vs_cpu="—"
                    else
                        vs_rps=$(ratio "$rps" "$c_rps") vs_cpu=$(ratio "$cpu" "$c_cpu")
                    fi
                    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                        "${LABEL_OF[$size]}" "$conns" "$(target_label "$target")" \
                        "$(awk -v v="$rps" 'BEGIN { printf "%.0f\n", v }')" "$(ratio "$rps" "$d_rps")" \
                        "$(fmt_lat "$(med "$layout" "$size" "$conns" "$target" $C_P50)")" \
                        "$(fmt_lat "$(med "$layout" "$size" "$conns" "$target" $C_P99)")" \
                        "$(fmt2 "$cpu")" "$(fmt2 "$(med "$layout" "$size" "$conns" "$target" $C_USER)")" \
                        "$(fmt2 "$(med "$layout" "$size" "$conns" "$target" $C_SYS)")" "$vs_rps" "$vs_cpu" "$errs"
                done
            done
        done
    done
    if [[ $IDLE_CONNS -gt 0 ]]; then
        echo
        echo "### Memory per client connection ($RUN_DATE)"
        echo
        echo "$IDLE_CONNS client connections against a fresh proxy ($THREADS worker), each making one request (13 B) and then kept alive, silent. RSS delta ÷ connections, in KiB, right after the last response, 2 s and 10 s later, and at the peak (VmHWM). https: a full TLS handshake per connection (ECDSA P-256, the same certificate for every proxy) before its request. eager: each client sends as soon as it is connected (and past its handshake); burst: all connect (and finish their handshakes), then all send at the same moment."
        echo
        echo "| proxy | protocol | pattern | at once | after 2 s | after 10 s | peak |"
        echo "|---|---|---|---:|---:|---:|---:|"
        awk -F'\t' -v base="${BASELINE_VERSION:-}" 'NR > 1 {
            name = $1 == "corelb" ? "**corelb**" : $1 == "haproxy" ? "HAProxy" : $1 == "base" ? "corelb baseline (" base ")" : $1
            printf "| %s | %s | %s | %.1f | %.1f | %.1f | %.1f |\n", name, $2, $3, $10, $11, $12, $13 }' "$IDLE_TSV"
    fi
    if [[ $HANDSHAKE_SECS -gt 0 ]]; then
        echo
        echo "### TLS handshakes ($RUN_DATE)"
        echo
        echo "A new HTTPS connection per request (13 B), $HANDSHAKE_CLIENTS client threads on CPU(s) $WRK_CPUS, each proxy ($THREADS worker) on CPU(s) $PROXY_CPUS; medians of $ROUNDS round(s) of ${HANDSHAKE_SECS} s. Handshakes per CPU-second = 10⁶ ÷ the proxy's CPU µs per handshake: what one core would do saturated."
        echo
        echo "| handshake | proxy | handshakes/s | resumed % | proxy CPU µs per handshake | handshakes per CPU-second | CPU ÷ better peer |"
        echo "|---|---|---:|---:|---:|---:|---:|"
        for mode in full resume; do
            declare -A HR=() HC=() HN=()
            for t in corelb nginx haproxy; do
                hs_med() { awk -F'\t' -v m="$mode" -v t="$t" -v k="$1" 'NR > 1 && $2 == m && $3 == t && $k != "nan" { print $k }' "$HANDSHAKE_TSV" | median; }
                HR[$t]=$(hs_med 8) HC[$t]=$(hs_med 9)
                HN[$t]=$(awk -F'\t' -v m="$mode" -v t="$t" 'NR > 1 && $2 == m && $3 == t && $4 > 0 { print 100 * $5 / $4 }' "$HANDSHAKE_TSV" | median)
            done
            best=$(better min "${HC[nginx]}" "${HC[haproxy]}")
            for t in corelb nginx haproxy; do
                printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$(target_label "$t")" \
                    "$(awk -v v="${HR[$t]}" 'BEGIN { printf "%.0f\n", v }')" "$(awk -v v="${HN[$t]}" 'BEGIN { printf "%.0f\n", v }')" \
                    "$(fmt2 "${HC[$t]}")" "$(awk -v v="${HC[$t]}" 'BEGIN { if (v == "nan" || v == 0) print "—"; else printf "%.0f\n", 1e6 / v }')" \
                    "$(ratio "${HC[$t]}" "$best")"
            done
            unset HR HC HN
        done
    fi
    echo
    echo "corelb ÷ better peer: corelb's req/s ÷ the higher of nginx's and HAProxy's (above 1: corelb is faster);" \
        "CPU ÷ better peer: corelb's CPU µs/req ÷ the lower of theirs (below 1: corelb needs less CPU)." \
        "vs direct = req/s ÷ req/s of wrk hitting the backend itself (isolated layout)." \
        "req/s vs corelb and CPU vs corelb = this row ÷ the corelb row of the same layout, body and conns." \
        "proxy CPU µs/req = user + system CPU of all the proxy's processes during the run ÷ requests completed;" \
        "user = the proxy's own code, system = the kernel's work for it (mostly loopback TCP)." \
        "RSS per idle connection = (RSS with them − RSS before) ÷ connections, all the proxy's processes." \
        "errors = non-2xx responses + socket errors, summed over rounds."
} >"$TABLE"

echo
cat "$TABLE"
echo
note "raw wrk outputs, runs.tsv, idle.tsv, handshakes.tsv, configs and logs in $OUT"
