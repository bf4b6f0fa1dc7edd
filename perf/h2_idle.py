#!/usr/bin/env python3
"""perf/h2_idle.py: what an idle HTTP/2 (TLS, ALPN h2) client connection
costs a proxy.

    h2_idle.py [--no-request] PORT COUNT PID...

Opens COUNT TLS connections to 127.0.0.1:PORT offering only h2, one after
another; on each, the connection preface and SETTINGS both ways, then one
`GET /` whose answer is read whole (with --no-request: none, the
connection is left idle once the server's SETTINGS came). Then it leaves
them all idle and reads the resident memory (VmRSS) of PID... (nginx:
master and worker). Prints `rss_before_kib rss_after_kib connections`;
rss_before is read after the first connection was set up (and its request
answered), so what a proxy sets up once is not counted against the
connections; rss_after SETTLE seconds after the last one.
"""

import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

# The same memory reading as the HTTP/1.1 idle measurement (same directory).
from idle_clients import status_kib


def rss_kib(pids):
    return status_kib(pids, "VmRSS")

SETTLE = 3.0


def open_one(port, ctx, request):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if request:
        conn.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                              (":authority", "localhost")], end_stream=True)
    sock.sendall(conn.data_to_send())
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("closed before the answer")
        for event in conn.receive_data(data):
            if request and isinstance(event, h2.events.StreamEnded):
                done = True
            if not request and isinstance(event, h2.events.RemoteSettingsChanged):
                done = True
        sock.sendall(conn.data_to_send())
    return sock


def main():
    args = sys.argv[1:]
    request = True
    if args and args[0] == "--no-request":
        request = False
        args = args[1:]
    port, count = int(args[0]), int(args[1])
    pids = [int(p) for p in args[2:]]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    keep = [open_one(port, ctx, request)]
    time.sleep(1)
    before = rss_kib(pids)
    for _ in range(count - 1):
        keep.append(open_one(port, ctx, request))
    time.sleep(SETTLE)
    print(before, rss_kib(pids), len(keep))


if __name__ == "__main__":
    main()
