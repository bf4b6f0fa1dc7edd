#!/usr/bin/env bash
# Two corelb instances behind an L4 split, in network namespaces: the
# recipe of docs/scale-out.md, run for real on one machine.
#
#   clb-cl   10.77.0.31  clients (perf/fleet_client.py, curl)
#   clb-l4   10.77.0.2   HAProxy in TCP mode: health checks, send-proxy-v2
#   clb-c1   10.77.0.11  corelb #1  (proxy-protocol listener, trusts .2)
#   clb-c2   10.77.0.12  corelb #2  (the same flags)
#   clb-be   10.77.0.21  nginx: backends be1..be3 on ports 9001..9003
#   clb-sw               the bridge joining them
#
# It shows, and prints the figures of:
#   1. the traffic spreads over both instances (requests each served);
#   2. one instance killed (SIGKILL) under load: HAProxy's checks move the
#      traffic to the other; the client-side failures are counted (only
#      the connections open on the killed instance may fail);
#   3. consistent hashing: the same key reaches the same backend through
#      either instance;
#   4. the client's address arrives at the backends intact through both
#      hops (PROXY protocol to corelb, X-Forwarded-For to nginx).
#
# Needs root (ip netns), haproxy, nginx, python3, curl. Without them it says
# why and exits 0 (so .ci/run can call it anywhere); with them a failed
# check exits 1. CORELB=path/to/corelb (default: target/release/corelb,
# else target/debug/corelb). DURATION=seconds of load (default 12).

set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "fleet_netns: skipped: $*"; exit 0; }
[[ $(id -u) -eq 0 ]] || skip "needs root for ip netns"
for tool in ip haproxy nginx python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || skip "needs $tool"
done
ip netns add clb-probe 2>/dev/null && ip netns del clb-probe || skip "ip netns does not work here"

CORELB=${CORELB:-}
if [[ -z $CORELB ]]; then
  for c in target/release/corelb target/debug/corelb; do
    [[ -x $c ]] && CORELB=$PWD/$c && break
  done
fi
[[ -n $CORELB && -x $CORELB ]] || skip "no corelb binary (cargo build first, or set CORELB)"
DURATION=${DURATION:-12}
NS=(clb-sw clb-cl clb-l4 clb-c1 clb-c2 clb-be)
WORK=$(mktemp -d /tmp/clb-fleet.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- the network: one bridge, one veth per namespace
ip netns add clb-sw
in_ns clb-sw ip link add br0 type bridge
in_ns clb-sw ip link set br0 up
in_ns clb-sw ip link set lo up
join() { # namespace, address
  local ns=$1 addr=$2 port=v-${1#clb-}
  ip netns add "$ns"
  ip link add "$port" type veth peer name eth0 netns "$ns"
  ip link set "$port" netns clb-sw
  in_ns clb-sw ip link set "$port" master br0 up
  in_ns "$ns" ip addr add "$addr/24" dev eth0
  in_ns "$ns" ip link set eth0 up
  in_ns "$ns" ip link set lo up
}
join clb-cl 10.77.0.31
join clb-l4 10.77.0.2
join clb-c1 10.77.0.11
join clb-c2 10.77.0.12
join clb-be 10.77.0.21

wait_port() { # namespace, host, port
  for _ in $(seq 100); do
    in_ns "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $2:$3 in $1"; tail -n 5 "$WORK"/*.log "$WORK"/nginx/*.log; exit 1
}

# --- backends: nginx answering its name and what it was told of the client
mkdir -p "$WORK/nginx"
servers=""
for i in 1 2 3; do
  servers+="server { listen 10.77.0.21:900$i; location / { return 200 \"be$i xff=\$http_x_forwarded_for from=\$remote_addr\n\"; } }
"
done
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $WORK/nginx/pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
$servers}
EOF
ip netns exec clb-be nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PIDS+=($!)
wait_port clb-be 10.77.0.21 9003

# --- two corelbs, identical flags (identical Maglev tables)
start_corelb() { # n, address
  ip netns exec "clb-c$1" "$CORELB" --listen "$2:8080,proxy-protocol" --proxy-protocol-from 10.77.0.2 \
    --backend 10.77.0.21:9001 --backend 10.77.0.21:9002 --backend 10.77.0.21:9003 \
    --algorithm consistent-hash --hash-key header:x-user --threads 1 --no-pin \
    --max-connections 8000 --log-level warn --access-log "$WORK/access$1.log" \
    2>"$WORK/corelb$1.log" &
  PIDS+=($!)
  eval "CORELB$1_PID=$!"
}
start_corelb 1 10.77.0.11
start_corelb 2 10.77.0.12
# Trusted only from the L4 hop: a direct client must not send a header,
# and is served with its own address.
wait_port clb-cl 10.77.0.11 8080
wait_port clb-cl 10.77.0.12 8080

# --- the L4 split: HAProxy, TCP mode, checks that send a header too
cat >"$WORK/haproxy.cfg" <<EOF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch 1
frontend fe
  bind 10.77.0.2:80
  default_backend corelbs
backend corelbs
  balance roundrobin
  server c1 10.77.0.11:8080 send-proxy-v2 check check-send-proxy inter 200ms fall 2 rise 2
  server c2 10.77.0.12:8080 send-proxy-v2 check check-send-proxy inter 200ms fall 2 rise 2
EOF
ip netns exec clb-l4 haproxy -db -f "$WORK/haproxy.cfg" 2>"$WORK/haproxy.log" &
PIDS+=($!)
wait_port clb-cl 10.77.0.2 80
sleep 1 # both servers up in HAProxy's eyes

failed=0
check() { # condition text, message
  if eval "$1"; then echo "    ok: $2"; else echo "    FAILED: $2"; failed=1; fi
}
served() { # n: requests corelb n answered (its access log, written each second)
  sleep 1.1
  cat "$WORK/access$1.log" 2>/dev/null | wc -l
}

echo "==> 1. the client's address, through HAProxy and corelb, at nginx"
answer=$(in_ns clb-cl curl -s -H 'x-user: alice' http://10.77.0.2/)
echo "    $answer"
check '[[ $answer == *"xff=10.77.0.31 "* ]]' "nginx sees the client (10.77.0.31), not HAProxy (10.77.0.2)"

echo "==> 2. consistent hashing: the same key, the same backend, through either instance"
same=0
for u in $(seq 1 30); do
  a=$(in_ns clb-cl curl -s -H "x-user: user$u" http://10.77.0.11:8080/ | cut -d' ' -f1)
  b=$(in_ns clb-cl curl -s -H "x-user: user$u" http://10.77.0.12:8080/ | cut -d' ' -f1)
  [[ -n $a && $a == "$b" ]] && same=$((same + 1))
done
echo "    $same of 30 keys reach the same backend through corelb #1 and #2"
check '[[ $same -eq 30 ]]' "stickiness holds across the fleet"

echo "==> 3. load through HAProxy; corelb #1 killed (SIGKILL) after $((DURATION / 3))s"
before1=$(served 1); before2=$(served 2)
ip netns exec clb-cl python3 perf/fleet_client.py 10.77.0.2 80 32 "$DURATION" 10.77.0.11 \
  >"$WORK/client.txt" 2>&1 &
client_pid=$!
sleep $((DURATION / 3))
mid1=$(served 1); mid2=$(served 2)
if [[ -z ${NOKILL:-} ]]; then
  kill -9 "$CORELB1_PID"
  sleep 1
  if in_ns clb-c1 bash -c 'exec 3<>/dev/tcp/10.77.0.11/8080' 2>/dev/null; then
    echo "corelb #1 still serves"; exit 1
  fi
fi
wait "$client_pid" || true
after2=$(served 2)
read -r _ requests _ failures _ on_killed _ elsewhere _ threads_failed <"$WORK/client.txt" || true
echo "    whole run: ${requests:-?} requests on 32 kept-alive connections, ${failures:-?} failed"
echo "    failed: ${on_killed:-?} on connections last answered through corelb #1 (killed), ${elsewhere:-?} elsewhere; ${threads_failed:-?} of 32 clients saw a failure"
sed -n 2p "$WORK/client.txt" | sed 's/^/    /'
spread=$(sed -n 2p "$WORK/client.txt")
check '[[ $spread == *"10.77.0.11"* && $spread == *"10.77.0.12"* ]]' "traffic spread over both instances"
check '[[ $((after2 - mid2)) -gt 0 ]]' "corelb #2 took the traffic after the kill"
# Only the connections open on the killed instance may fail (each loses
# its request in flight, and maybe its reconnect while HAProxy's checks
# still count the instance up: fall 2 x inter 200ms).
check '[[ ${elsewhere:-1} -eq 0 ]]' "no failure on a connection through corelb #2"
check '[[ ${threads_failed:-33} -le 16 ]]' "failures only on the clients HAProxy had put on corelb #1 (16 of 32)"
for n in 1 2; do
  echo "==> corelb #$n's log (warnings):"
  sed 's/^/    /' "$WORK/corelb$n.log" | tail -5
done
exit $failed
