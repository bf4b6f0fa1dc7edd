#!/usr/bin/env python3
"""perf/h2_idle.py: what an idle HTTP/2 (TLS, ALPN h2) client connection
costs a proxy.

    h2_idle.py PORT COUNT PID...

Opens COUNT TLS connections to 127.0.0.1:PORT offering only h2, makes one
`GET /` on each and reads its answer, then leaves them idle and reads the
resident memory (VmRSS) of PID... Prints `rss_before_kib rss_after_kib
connections`; rss_before is read after the first connection's request.
"""

import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

# The same memory reading as the HTTP/1.1 idle measurement (same directory).
from idle_clients import rss_kib


def open_one(port, ctx):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                          (":authority", "localhost")], end_stream=True)
    sock.sendall(conn.data_to_send())
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("closed before the answer")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.StreamEnded):
                done = True
        sock.sendall(conn.data_to_send())
    return sock


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    pids = [int(p) for p in sys.argv[3:]]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    keep = [open_one(port, ctx)]
    time.sleep(1)
    before = rss_kib(pids)
    for _ in range(count - 1):
        keep.append(open_one(port, ctx))
    time.sleep(3)
    print(before, rss_kib(pids), len(keep))


if __name__ == "__main__":
    main()
