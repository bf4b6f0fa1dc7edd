#!/usr/bin/env bash
# perf/compare.sh: side-by-side load test of corelb, nginx and HAProxy in
# front of the same nginx backends, on loopback, with wrk.
#
#   perf/compare.sh            # full run: 3 rounds, 50 and 256 connections (~8 min)
#   perf/compare.sh --quick    # smoke run: 1 round, 50 connections, 3 s (~1 min)
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
front of two nginx backends (13-byte body, 16 KiB file), interleaving the
targets round by round, and prints one markdown table.

Options:
  --quick               1 round, 3 s runs, 50 connections only (under 2 min)
  --build               run `cargo build --release` first (done anyway when
                        target/release/corelb is missing)
  --rounds N            rounds of every measurement; medians are reported [3]
  --duration S          seconds of each measured wrk run [6; quick: 3]
  --warmup S            seconds of the wrk warm-up before each run [1]
  --conns LIST          client connections, comma-separated [50,256; quick: 50]
  --sizes LIST          body sizes: hello (13 B) and/or 16k [hello,16k]
  --threads N           worker threads of every proxy [1]
  --scale-threads N     threads of the corelb scaling row [2 x --threads]
  --scale-cpus LIST     CPUs of the corelb scaling row [--proxy-cpus if it has
                        enough CPUs, else all CPUs]
  --no-scale            skip the corelb scaling row
  --proxy-cpus LIST     CPUs of the proxy under test (taskset -c syntax)
  --backend-cpus LIST   CPUs of the two nginx backends
  --wrk-cpus LIST       CPUs of wrk
  --wrk-threads N       wrk threads [number of --wrk-cpus]
  --upstream-keepalive N
                        corelb --upstream-keepalive, idle upstream connections
                        kept per worker [1024, as nginx's `keepalive 1024`]
  --port-base P         first of the 127.0.0.1 ports used (P..P+9) [28400, below the
                        kernel's ephemeral port range]
  --out DIR             results directory [perf/results/<timestamp>]
  -h, --help            this help

Default CPU layout: on 2 CPUs, wrk and backends on CPU 0 and the proxy alone
on CPU 1. With at least threads+2 CPUs: wrk on 0, backends on 1, the proxy on
2..(2+threads-1).
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
SIZES="hello,16k"
THREADS=1
SCALE_THREADS=""
SCALE_CPUS=""
NO_SCALE=0
PROXY_CPUS=""
BACKEND_CPUS=""
WRK_CPUS=""
WRK_THREADS=""
UPSTREAM_KEEPALIVE=1024
PORT_BASE=28400
OUT=""

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --build) BUILD=1 ;;
        --rounds) need_arg "$@"; ROUNDS=$2; shift ;;
        --duration) need_arg "$@"; DURATION=$2; shift ;;
        --warmup) need_arg "$@"; WARMUP=$2; shift ;;
        --conns) need_arg "$@"; CONNS=$2; shift ;;
        --sizes) need_arg "$@"; SIZES=$2; shift ;;
        --threads) need_arg "$@"; THREADS=$2; shift ;;
        --scale-threads) need_arg "$@"; SCALE_THREADS=$2; shift ;;
        --scale-cpus) need_arg "$@"; SCALE_CPUS=$2; shift ;;
        --no-scale) NO_SCALE=1 ;;
        --proxy-cpus) need_arg "$@"; PROXY_CPUS=$2; shift ;;
        --backend-cpus) need_arg "$@"; BACKEND_CPUS=$2; shift ;;
        --wrk-cpus) need_arg "$@"; WRK_CPUS=$2; shift ;;
        --wrk-threads) need_arg "$@"; WRK_THREADS=$2; shift ;;
        --upstream-keepalive) need_arg "$@"; UPSTREAM_KEEPALIVE=$2; shift ;;
        --port-base) need_arg "$@"; PORT_BASE=$2; shift ;;
        --out) need_arg "$@"; OUT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    : "${ROUNDS:=1}" "${DURATION:=3}" "${WARMUP:=1}" "${CONNS:=50}"
else
    : "${ROUNDS:=3}" "${DURATION:=6}" "${WARMUP:=1}" "${CONNS:=50,256}"
fi
: "${SCALE_THREADS:=$((2 * THREADS))}"

is_pos_int() { [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]]; }
for v in ROUNDS DURATION WARMUP THREADS SCALE_THREADS UPSTREAM_KEEPALIVE PORT_BASE; do
    is_pos_int "${!v}" || die "--$(tr '[:upper:]_' '[:lower:]-' <<<"$v") must be a positive integer, not '${!v}'"
done
[[ $PORT_BASE -ge 1024 && $PORT_BASE -le 65525 ]] || die "--port-base must be in 1024..65525"
IFS=', ' read -ra CONNS_LIST <<<"$CONNS"
IFS=', ' read -ra SIZES_LIST <<<"$SIZES"
for c in "${CONNS_LIST[@]}"; do is_pos_int "$c" || die "bad --conns entry '$c'"; done
for s in "${SIZES_LIST[@]}"; do [[ $s == hello || $s == 16k ]] || die "bad --sizes entry '$s' (hello or 16k)"; done
[[ ${#CONNS_LIST[@]} -gt 0 && ${#SIZES_LIST[@]} -gt 0 ]] || die "--conns and --sizes must not be empty"

# ------------------------------------------------------------------- tools
# command -> Debian package
declare -A PKG_OF=(
    [wrk]=wrk [nginx]=nginx [haproxy]=haproxy [curl]=curl
    [taskset]=util-linux [getconf]=libc-bin [pgrep]=procps [awk]=mawk
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

CORELB_SRC=$REPO/target/release/corelb
if [[ $BUILD == 1 || ! -x $CORELB_SRC ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: cannot build corelb"
    note "building corelb (cargo build --release)"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
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

# --------------------------------------------------------------- workspace
STAMP=$(date +%Y%m%d-%H%M%S)
: "${OUT:=$SCRIPT_DIR/results/$STAMP}"
mkdir -p "$OUT/raw" "$OUT/logs" "$OUT/configs"
OUT=$(cd "$OUT" && pwd)
RUNS_TSV=$OUT/runs.tsv
TABLE=$OUT/table.md

# Runtime files live in a private temp dir readable by nginx's unprivileged
# workers (the 16 KiB file is served from it).
WORK=$(mktemp -d /tmp/corelb-perf.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/www"
head -c 16384 /dev/urandom >"$WORK/www/16k.bin"
chmod 644 "$WORK/www/16k.bin"
# A private copy: others may rebuild target/ while we measure.
cp "$CORELB_SRC" "$WORK/corelb"
CORELB=$WORK/corelb
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
        if out=$(curl -s -o /dev/null --max-time 2 -w '%{http_code} %{size_download}' "$url"); then
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

start_haproxy() { # NAME CPUS KEY=VALUE...
    local name=$1 cpus=$2
    shift 2
    fill "$CONF_DIR/haproxy.cfg" "$WORK/$name.cfg" "$@"
    haproxy -c -q -f "$WORK/$name.cfg" >"$WORK/$name.log" 2>&1 ||
        { cat "$WORK/$name.log" >&2; die "haproxy rejects $WORK/$name.cfg"; }
    start_bg "$name" "$cpus" haproxy -db -f "$WORK/$name.cfg"
}

start_corelb() { # NAME CPUS THREADS PORT BACKEND_PORT PIN(pin|no-pin)
    local name=$1 cpus=$2 threads=$3 port=$4 bport=$5 pin=$6
    local args=(--listen "127.0.0.1:$port" --backend "127.0.0.1:$bport"
        --threads "$threads" "--$pin" --upstream-keepalive "$UPSTREAM_KEEPALIVE")
    echo "taskset -c $cpus corelb ${args[*]}" >"$OUT/configs/$name.cmdline"
    start_bg "$name" "$cpus" "$CORELB" "${args[@]}"
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
)
# A listening port inside the ephemeral range can be taken at any moment by
# the local end of an outgoing connection (wrk's, a proxy's), and the next
# proxy then fails to bind.
read -r EPH_LO EPH_HI </proc/sys/net/ipv4/ip_local_port_range
if [[ $PORT_BASE -le $EPH_HI && $((PORT_BASE + 9)) -ge $EPH_LO ]]; then
    note "warning: ports $PORT_BASE..$((PORT_BASE + 9)) overlap the ephemeral range $EPH_LO..$EPH_HI; a bind may fail mid-run"
fi
for ((p = PORT_BASE; p <= PORT_BASE + 9; p++)); do
    if port_busy "$p"; then die "port 127.0.0.1:$p is in use: pick another --port-base"; fi
done
declare -A PATH_OF=([hello]=/ [16k]=/16k.bin)
declare -A BYTES_OF=([hello]=13 [16k]=16384)
declare -A BACKEND_PORT_OF=([hello]=$P_BACK_HELLO [16k]=$P_BACK_16K)
declare -A LABEL_OF=([hello]="13 B" [16k]="16 KiB")

# ------------------------------------------------------------------ plan
# Targets measured in each round, in this order; corelb2 is the scaling row
# (corelb with SCALE_THREADS threads), measured with the small body only.
targets_for() { # SIZE
    local t=(direct corelb nginx haproxy)
    if [[ $NO_SCALE == 0 && $1 == hello ]]; then t+=(corelb2); fi
    echo "${t[*]}"
}
TOTAL_RUNS=0
for s in "${SIZES_LIST[@]}"; do
    read -ra tl <<<"$(targets_for "$s")"
    TOTAL_RUNS=$((TOTAL_RUNS + ROUNDS * ${#CONNS_LIST[@]} * ${#tl[@]}))
done
EST=$((TOTAL_RUNS * (DURATION + WARMUP + 1) + ${#SIZES_LIST[@]} * 5))

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -srm), $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "corelb: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown) ($CORELB_SRC)"
    echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "haproxy: $(haproxy -v | head -n1)"
    echo "wrk: $(wrk -v 2>&1 | head -n1)"
    echo "layout: proxy CPUs $PROXY_CPUS ($THREADS thread(s)), backends CPUs $BACKEND_CPUS, wrk CPUs $WRK_CPUS ($WRK_THREADS thread(s)), scaling row CPUs $SCALE_CPUS ($SCALE_THREADS threads)"
    echo "runs: $ROUNDS round(s) x ${DURATION}s (+${WARMUP}s warm-up), conns ${CONNS_LIST[*]}, sizes ${SIZES_LIST[*]}, clk_tck $CLK_TCK"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2
read -r LOAD1 _ </proc/loadavg
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 0.5) }'; then
    note "warning: load average is $LOAD1: something else is running; numbers will be noisy (CPU µs/req suffers least)"
fi
note "$TOTAL_RUNS measured runs, about $((EST / 60)) min $((EST % 60)) s; results in $OUT"

printf 'size\tconns\ttarget\tround\trequests\trps\tp50_us\tp99_us\terrors\tcpu_ticks\tcpu_us_per_req\tuser_ticks\tuser_us_per_req\n' >"$RUNS_TSV"

# ---------------------------------------------------------------- backends
start_nginx backend-hello "$CONF_DIR/backend-hello.nginx.conf" "$BACKEND_CPUS" PORT="$P_BACK_HELLO"
wait_http backend-hello "$LAST_PID" "http://127.0.0.1:$P_BACK_HELLO/" 13
start_nginx backend-16k "$CONF_DIR/backend-16k.nginx.conf" "$BACKEND_CPUS" PORT="$P_BACK_16K"
wait_http backend-16k "$LAST_PID" "http://127.0.0.1:$P_BACK_16K/16k.bin" 16384
note "backends up on 127.0.0.1:$P_BACK_HELLO (13 B) and :$P_BACK_16K (16 KiB)"

# --------------------------------------------------------------- measuring
declare -A PID_OF=()
RUN_NO=0

measure() { # SIZE CONNS TARGET ROUND
    local size=$1 conns=$2 target=$3 round=$4 port pid=0 url raw t0=0 t1=0 u0=0 u1=0 stats
    local req rps p50 p99 err ticks cpu user_ticks user_cpu
    if [[ $target == direct ]]; then
        port=${BACKEND_PORT_OF[$size]}
    else
        port=${PROXY_PORT[$size.$target]}
        pid=${PID_OF[$target]}
    fi
    url="http://127.0.0.1:$port${PATH_OF[$size]}"
    raw="$OUT/raw/$size-c$conns-$target-r$round.txt"
    RUN_NO=$((RUN_NO + 1))

    taskset -c "$WRK_CPUS" wrk -t"$WRK_THREADS" -c"$conns" -d"${WARMUP}s" "$url" >"$raw.warmup" 2>&1 &
    STARTED+=("$!")
    wait "$!" || die "wrk warm-up against $target failed: $(cat "$raw.warmup")"
    STARTED=("${STARTED[@]:0:${#STARTED[@]}-1}")

    [[ $pid == 0 ]] || read -r t0 u0 <<<"$(tree_ticks "$pid")"
    taskset -c "$WRK_CPUS" wrk --latency -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" --timeout 10s "$url" >"$raw" 2>&1 &
    STARTED+=("$!")
    wait "$!" || die "wrk against $target failed: $(cat "$raw")"
    STARTED=("${STARTED[@]:0:${#STARTED[@]}-1}")
    [[ $pid == 0 ]] || read -r t1 u1 <<<"$(tree_ticks "$pid")"

    stats=$(parse_wrk "$raw") || die "cannot read wrk's output in $raw"
    read -r req rps p50 p99 err <<<"$stats"
    ticks=$((t1 - t0))
    user_ticks=$((u1 - u0))
    if [[ $pid == 0 || $req -eq 0 ]]; then
        cpu=nan user_cpu=nan
    else
        cpu=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
        user_cpu=$(awk -v t="$user_ticks" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$size" "$conns" "$target" "$round" "$req" "$rps" "$p50" "$p99" "$err" "$ticks" "$cpu" \
        "$user_ticks" "$user_cpu" >>"$RUNS_TSV"
    printf 'compare.sh: [%d/%d] %-6s c=%-4s %-8s round %d: %9.0f req/s  p50 %8.0f us  p99 %8.0f us  CPU %s us/req%s\n' \
        "$RUN_NO" "$TOTAL_RUNS" "$size" "$conns" "$target" "$round" "$rps" "$p50" "$p99" "$cpu" \
        "$([[ $err == 0 ]] || echo "  ERRORS $err")" >&2
}

for size in "${SIZES_LIST[@]}"; do
    bport=${BACKEND_PORT_OF[$size]}
    path=${PATH_OF[$size]}
    read -ra targets <<<"$(targets_for "$size")"
    # One set of proxies per body size: each fronts only that size's backend
    # (corelb takes one pool from its flags). Idle proxies cost no CPU.
    # Side by side with nginx and HAProxy, corelb's threads float inside the
    # CPU set as theirs do; the scaling row compares corelb with itself, so
    # it runs as deployed: each worker pinned to one CPU of the set.
    start_corelb "corelb-$size" "$PROXY_CPUS" "$THREADS" "${PROXY_PORT[$size.corelb]}" "$bport" no-pin
    PID_OF[corelb]=$LAST_PID
    start_nginx "nginx-$size" "$CONF_DIR/proxy.nginx.conf" "$PROXY_CPUS" \
        THREADS="$THREADS" PORT="${PROXY_PORT[$size.nginx]}" BACKEND_PORT="$bport"
    PID_OF[nginx]=$LAST_PID
    start_haproxy "haproxy-$size" "$PROXY_CPUS" \
        THREADS="$THREADS" PORT="${PROXY_PORT[$size.haproxy]}" BACKEND_PORT="$bport"
    PID_OF[haproxy]=$LAST_PID
    if [[ " ${targets[*]} " == *" corelb2 "* ]]; then
        start_corelb "corelb${SCALE_THREADS}t-$size" "$SCALE_CPUS" "$SCALE_THREADS" "${PROXY_PORT[$size.corelb2]}" "$bport" pin
        PID_OF[corelb2]=$LAST_PID
    fi
    wait_http "corelb-$size" "${PID_OF[corelb]}" "http://127.0.0.1:${PROXY_PORT[$size.corelb]}$path" "${BYTES_OF[$size]}"
    wait_http "nginx-$size" "${PID_OF[nginx]}" "http://127.0.0.1:${PROXY_PORT[$size.nginx]}$path" "${BYTES_OF[$size]}"
    wait_http "haproxy-$size" "${PID_OF[haproxy]}" "http://127.0.0.1:${PROXY_PORT[$size.haproxy]}$path" "${BYTES_OF[$size]}"
    if [[ -n ${PID_OF[corelb2]:-} ]]; then
        wait_http "corelb${SCALE_THREADS}t-$size" "${PID_OF[corelb2]}" "http://127.0.0.1:${PROXY_PORT[$size.corelb2]}$path" "${BYTES_OF[$size]}"
    fi
    note "$size: corelb, nginx, haproxy answer 200 with ${BYTES_OF[$size]} bytes"

    for ((round = 1; round <= ROUNDS; round++)); do
        for conns in "${CONNS_LIST[@]}"; do
            # Each round starts one target later, so no target always runs
            # first or always follows the same one (the machine drifts).
            for ((i = 0; i < ${#targets[@]}; i++)); do
                measure "$size" "$conns" "${targets[(i + round - 1) % ${#targets[@]}]}" "$round"
            done
        done
    done

    for target in corelb2 haproxy nginx corelb; do
        if [[ -n ${PID_OF[$target]:-} ]]; then
            stop_started "${PID_OF[$target]}"
            unset "PID_OF[$target]"
        fi
    done
done

# ------------------------------------------------------------------ table
# median of the values on stdin ("nan" if none)
median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# column COL of the runs of SIZE CONNS TARGET
col() {
    awk -F'\t' -v s="$1" -v c="$2" -v t="$3" -v k="$4" \
        'NR > 1 && $1 == s && $2 == c && $3 == t && $k != "nan" { print $k }' "$RUNS_TSV"
}
fmt_lat() { awk -v v="$1" 'BEGIN { if (v == "nan") print "—"; else if (v < 1000) printf "%.0f µs\n", v; else printf "%.2f ms\n", v / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "—"; else printf "%.2f\n", a / b }'; }

target_label() {
    case $1 in
        direct) echo "direct (no proxy)" ;;
        corelb) echo "**corelb**" ;;
        nginx) echo "nginx" ;;
        haproxy) echo "HAProxy" ;;
        corelb2) echo "corelb, $SCALE_THREADS threads (CPUs $SCALE_CPUS)" ;;
    esac
}

{
    echo "### corelb vs nginx vs HAProxy ($STAMP)"
    echo
    echo "Proxies: $THREADS worker thread(s) on CPU(s) $PROXY_CPUS; backends (nginx, 1 worker each) on CPU(s) $BACKEND_CPUS;" \
        "wrk -t$WRK_THREADS on CPU(s) $WRK_CPUS. Medians of $ROUNDS round(s) of ${DURATION} s (after ${WARMUP} s warm-up), targets interleaved, each round starting one target later."
    echo
    echo "| body | conns | target | req/s | vs direct | p50 | p99 | proxy CPU µs/req | of it user space | req/s vs corelb | CPU vs corelb | errors |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for size in "${SIZES_LIST[@]}"; do
        read -ra targets <<<"$(targets_for "$size")"
        for conns in "${CONNS_LIST[@]}"; do
            d_rps=$(col "$size" "$conns" direct 6 | median)
            c_rps=$(col "$size" "$conns" corelb 6 | median)
            c_cpu=$(col "$size" "$conns" corelb 11 | median)
            for target in "${targets[@]}"; do
                rps=$(col "$size" "$conns" "$target" 6 | median)
                p50=$(col "$size" "$conns" "$target" 7 | median)
                p99=$(col "$size" "$conns" "$target" 8 | median)
                cpu=$(col "$size" "$conns" "$target" 11 | median)
                user=$(col "$size" "$conns" "$target" 13 | median)
                errs=$(col "$size" "$conns" "$target" 9 | awk '{ s += $1 } END { print s + 0 }')
                if [[ $target == direct ]]; then
                    cpu_s="—" user_s="—" vs_rps="—" vs_cpu="—"
                else
                    cpu_s=$(awk -v v="$cpu" 'BEGIN { if (v == "nan") print "—"; else printf "%.2f\n", v }')
                    user_s=$(awk -v v="$user" 'BEGIN { if (v == "nan") print "—"; else printf "%.2f\n", v }')
                    vs_rps=$(ratio "$rps" "$c_rps")
                    vs_cpu=$(ratio "$cpu" "$c_cpu")
                fi
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                    "${LABEL_OF[$size]}" "$conns" "$(target_label "$target")" \
                    "$(awk -v v="$rps" 'BEGIN { printf "%.0f\n", v }')" "$(ratio "$rps" "$d_rps")" \
                    "$(fmt_lat "$p50")" "$(fmt_lat "$p99")" "$cpu_s" "$user_s" "$vs_rps" "$vs_cpu" "$errs"
            done
        done
    done
    echo
    echo "vs direct = req/s ÷ req/s of wrk hitting the backend itself (the ceiling)." \
        "req/s vs corelb and CPU vs corelb = this row ÷ the corelb row of the same body and conns:" \
        "req/s below 1 means slower than corelb, CPU above 1 means more CPU per request than corelb." \
        "proxy CPU µs/req = user+system CPU of all the proxy's processes during the run ÷ requests completed;" \
        "of it user space = the user part alone (the proxy's own code; the rest is the kernel's TCP work, the same for every proxy)." \
        "errors = non-2xx responses + socket errors, summed over rounds."
} >"$TABLE"

echo
cat "$TABLE"
echo
note "raw wrk outputs, runs.tsv, configs and logs in $OUT"
