#!/usr/bin/env bash
# perf/h2.sh: HTTP/2 over TLS through corelb, nginx (`http2 on`) and
# HAProxy (`alpn h2`), one worker each, side by side with h2load, in front
# of the same nginx backends as perf/compare.sh (13 B and 16 KiB bodies).
#
#   perf/h2.sh [--duration S] [--rounds N] [--idle N] [--idle-only]
#
# Rows: body size x (10 connections x 10 streams, 100 x 10). Targets are
# interleaved round by round; the medians of req/s and of CPU time per
# request (the proxy's utime+stime over the run / requests) are printed,
# with ratios against the better peer. Nothing is pinned: on a busy
# machine, compare ratios within one run only. Then the memory of N idle
# h2 connections per proxy (perf/h2_idle.py) [1000], twice: each after one
# request, and each without any; every one of these rows on a fresh
# process of its proxy (none has served load before), one worker each.
# --idle-only: the memory rows only.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
CONF=$SCRIPT_DIR/conf
DURATION=5
ROUNDS=3
IDLE=1000
LOAD=1
while (($#)); do
    case $1 in
        --idle) IDLE=$2; shift 2 ;;
        --idle-only) LOAD=0; shift ;;
        --duration) DURATION=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        *) echo "usage: perf/h2.sh [--duration S] [--rounds N] [--idle N] [--idle-only]" >&2; exit 2 ;;
    esac
done
# CORELB=path: another build of corelb (default: the release build here).
CORELB=${CORELB:-$REPO/target/release/corelb}
[[ -x $CORELB ]] || (cd "$REPO" && cargo build --release)
for tool in h2load nginx haproxy openssl; do
    command -v "$tool" >/dev/null || { echo "perf/h2.sh: $tool is needed" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/corelb-h2perf.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

fill() { # TEMPLATE OUTPUT KEY=VALUE...
    local tpl=$1 out=$2 kv expr=()
    shift 2
    for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${expr[@]}" "$tpl" >"$out"
}
start() { "$@" >"$WORK/$(basename "$1").$RANDOM.log" 2>&1 & PIDS+=($!); LAST=$!; }

mkdir -p "$WORK/tls" "$WORK/www"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost >/dev/null 2>&1
cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/both.pem"
head -c 16384 /dev/urandom >"$WORK/www/16k.bin"
# nginx's workers (another user) must read the file.
chmod 755 "$WORK" "$WORK/www" && chmod 644 "$WORK/www/16k.bin"

declare -A BPORT=([hello]=28501 [16k]=28502) PATH_OF=([hello]=/ [16k]=/16k.bin)
for size in hello 16k; do
    mkdir -p "$WORK/b-$size-tmp"
    fill "$CONF/backend-$size.nginx.conf" "$WORK/b-$size.conf" DIR="$WORK" NAME="b-$size" PORT="${BPORT[$size]}"
    start nginx -p "$WORK" -c "$WORK/b-$size.conf" -e "$WORK/b-$size.error.log"
done

# start_proxy TARGET SIZE PORT: one of the proxies under test, one worker,
# TLS with ALPN h2 on PORT, in front of SIZE's backend; its pid in LAST.
start_proxy() {
    local target=$1 size=$2 port=$3 name="$1-$2-$3"
    case $target in
        corelb)
            start "$CORELB" --listen "127.0.0.1:$port,tls" --tls-cert "$WORK/tls/cert.pem" \
                --tls-key "$WORK/tls/key.pem" --backend "127.0.0.1:${BPORT[$size]}" --threads 1 \
                --no-pin --admin off --client-idle-timeout 300s ;;
        nginx)
            mkdir -p "$WORK/$name-tmp"
            fill "$CONF/proxy-tls.nginx.conf" "$WORK/$name.conf" DIR="$WORK" NAME="$name" THREADS=1 \
                PORT="$port" BACKEND_PORT="${BPORT[$size]}" TLS_DIR="$WORK/tls"
            # nginx 1.25+ says `http2 on;`; older ones (Debian 12: 1.22) `listen ... http2`.
            sed -i 's|\(listen .* ssl\)|\1 http2|' "$WORK/$name.conf"
            start nginx -p "$WORK" -c "$WORK/$name.conf" -e "$WORK/$name.error.log" ;;
        haproxy)
            fill "$CONF/haproxy-tls.cfg" "$WORK/$name.cfg" THREADS=1 PORT="$port" \
                BACKEND_PORT="${BPORT[$size]}" TLS_DIR="$WORK/tls"
            sed -i 's|alpn http/1.1|alpn h2,http/1.1|' "$WORK/$name.cfg"
            start haproxy -db -f "$WORK/$name.cfg" ;;
    esac
}

declare -A PORT PID
port=28510
if ((LOAD)); then
    for size in hello 16k; do
        for target in corelb nginx haproxy; do
            PORT[$target.$size]=$port
            start_proxy "$target" "$size" "$port"
            PID[$target.$size]=$LAST
            port=$((port + 1))
        done
    done
fi
sleep 2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# nginx's master forks the worker that does the work.
worker_of() { local kids; kids=$(pgrep -P "$1" | head -1); echo "${kids:-$1}"; }

declare -A RPS CPU
((LOAD)) || ROUNDS=0
for round in $(seq "$ROUNDS"); do
    for size in hello 16k; do
        for shape in "10 10" "100 10"; do
            set -- $shape
            for target in corelb nginx haproxy; do
                pid=$(worker_of "${PID[$target.$size]}")
                url="https://127.0.0.1:${PORT[$target.$size]}${PATH_OF[$size]}"
                h2load -c "$1" -m "$2" -D 1 "$url" >/dev/null 2>&1 || true # warm-up
                t0=$(cpu_ticks "$pid")
                out=$(h2load -c "$1" -m "$2" -D "$DURATION" "$url" 2>&1)
                t1=$(cpu_ticks "$pid")
                done_=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
                done_=${done_:-0}
                key="$size $1x$2 $target"
                RPS[$key]+="$((done_ / DURATION)) "
                if ((done_ > 0)); then
                    CPU[$key]+="$(awk -v t=$((t1 - t0)) -v n="$done_" -v hz="$(getconf CLK_TCK)" \
                        'BEGIN { printf "%.2f", t / hz / n * 1e6 }') "
                else
                    CPU[$key]+="0 "
                fi
            done
        done
    done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
if ((LOAD)); then
echo "HTTP/2 over TLS, one worker each, $ROUNDS rounds x ${DURATION}s, medians ($(date -u +%F))"
printf '%-6s %-7s %-8s %10s %12s %10s %10s\n' size conns target req/s "cpu us/req" rps-ratio cpu-ratio
for size in hello 16k; do
    for shape in 10x10 100x10; do
        declare -A m=() c=()
        for t in corelb nginx haproxy; do
            m[$t]=$(median "${RPS[$size $shape $t]}")
            c[$t]=$(median "${CPU[$size $shape $t]}")
        done
        best=nginx
        ((m[haproxy] > m[nginx])) && best=haproxy
        for t in corelb nginx haproxy; do
            printf '%-6s %-7s %-8s %10s %12s %10s %10s\n' "$size" "$shape" "$t" "${m[$t]}" "${c[$t]}" \
                "$(awk -v a="${m[$t]}" -v b="${m[$best]}" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
                "$(awk -v a="${c[$t]}" -v b="${c[$best]}" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
        done
    done
done
fi

if ((IDLE > 0)); then
    echo
    echo "Idle h2 connections over TLS, $IDLE per row, a fresh proxy (1 worker) per row ($(date -u '+%F %H:%M UTC'))"
    printf '%-8s %-11s %12s %12s %14s\n' target connection "rss before" "rss after" "per conn"
    port=28530
    for mode in request no-request; do
        flag=()
        [[ $mode == no-request ]] && flag=(--no-request)
        for t in corelb nginx haproxy; do
            start_proxy "$t" hello "$port"
            sleep 2
            pids=$(worker_of "$LAST")
            [[ $t == nginx ]] && pids="$LAST $pids"
            read -r before after n < <(python3 "$SCRIPT_DIR/h2_idle.py" "${flag[@]}" "$port" "$IDLE" $pids)
            printf '%-8s %-11s %9d KiB %9d KiB %10.2f KiB\n' "$t" "$mode" "$before" "$after" \
                "$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { print (a - b) / n }')"
            kill "$LAST" 2>/dev/null || true
            wait "$LAST" 2>/dev/null || true
            port=$((port + 1))
        done
    done
fi
