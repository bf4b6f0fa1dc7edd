#!/usr/bin/env python3
"""Keep-alive HTTP clients that count every failure, for fleet_netns.sh.

usage: fleet_client.py HOST PORT CONNECTIONS SECONDS KILLED_ADDR

Each of CONNECTIONS threads sends GETs on one kept-alive connection for
SECONDS; a request that gets no answer (reset, closed, timed out) or an
answer other than 200 is a failure, and the thread opens a new
connection. The backends answer `from=ADDR`, the corelb that forwarded
the request; answers are counted by it, and each failure by whether the
thread's last answer came through KILLED_ADDR (wrk does not count a
connection closed before its answer as an error, so it cannot say).
"""
import http.client
import sys
import threading
import time

host, port, conns, seconds, killed = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
lock = threading.Lock()
by_instance = {}
failures = {"on_killed": 0, "elsewhere": 0}
failed_threads = set()
kinds = {}


def run(n, deadline):
    conn, last_from = None, None
    while time.monotonic() < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", "/", headers={"x-user": "load"})
            res = conn.getresponse()
            body = res.read().decode(errors="replace")
            if res.status != 200:
                raise RuntimeError(f"status {res.status}")
            last_from = body.rsplit("from=", 1)[-1].strip()
            with lock:
                by_instance[last_from] = by_instance.get(last_from, 0) + 1
        except Exception as e:
            with lock:
                where = "on_killed" if last_from == killed else "elsewhere"
                failures[where] += 1
                failed_threads.add(n)
                kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
            if conn is not None:
                conn.close()
            conn = None


deadline = time.monotonic() + seconds
threads = [threading.Thread(target=run, args=(n, deadline)) for n in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
total = sum(by_instance.values()) + sum(failures.values())
print(f"requests {total} failures {sum(failures.values())} "
      f"on_killed {failures['on_killed']} elsewhere {failures['elsewhere']} "
      f"threads_failed {len(failed_threads)}")
print("answered by instance:", dict(sorted(by_instance.items())), "failures by kind:", kinds or "none")
