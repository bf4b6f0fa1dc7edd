#!/usr/bin/env python3
"""perf/idle_clients.py: what an idle kept-alive client connection costs a proxy.

    idle_clients.py [--tls] PORT COUNT PID...

Opens COUNT connections to 127.0.0.1:PORT (with --tls: HTTPS, a full TLS
handshake each, the certificate not checked), sends one `GET /` on each and
reads its whole response (so every connection is past its first request and
kept alive), then leaves them all idle and reads the resident memory (VmRSS)
of the proxy's processes PID... (nginx: master and workers). Prints one line:

    rss_before_kib rss_after_kib connections

rss_before is read after one connection has made one request, so buffers a
proxy sets up once are not counted against the idle connections; rss_after
SETTLE seconds after the last response, idle time being the point. Connections
are opened in batches of BATCH, so no listen queue overflows. Bounded: gives
up (exit 1) if the connections are not all served within TIMEOUT seconds.
"""

import selectors
import socket
import ssl
import sys
import time

BATCH = 500
TIMEOUT = 120.0
SETTLE = 3.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle_clients\r\n\r\n"


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def response_complete(data):
    """A whole response with a Content-Length body is in `data`."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= end + 4 + length


def tls_context():
    """A client context for --tls: TLS 1.2 and 1.3, no certificate check
    (the measurement is of the server's memory, not of trust)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def serve_batch(port, count, deadline, keep, tls):
    """Open `count` connections, one request each; add them to `keep`.
    `tls`: an SSLContext to speak HTTPS with, or None."""
    sel = selectors.DefaultSelector()
    # Per connection: [bytes left to send, bytes received, handshake done].
    pending = {}
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if tls:
            sock = tls.wrap_socket(sock, server_hostname="localhost",
                                   do_handshake_on_connect=False)
        sock.connect_ex(("127.0.0.1", port))
        pending[sock] = [REQUEST, b"", tls is None]
        sel.register(sock, selectors.EVENT_WRITE)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit(f"idle_clients: {len(pending)} connections not served within {TIMEOUT:.0f} s")
        for key, events in sel.select(timeout=min(left, 1.0)):
            sock = key.fileobj
            out, got, ready = pending[sock]
            try:
                if not ready:
                    sock.do_handshake()
                    pending[sock][2] = True
                    sel.modify(sock, selectors.EVENT_WRITE)
                    continue
                if out:
                    sent = sock.send(out)
                    pending[sock][0] = out = out[sent:]
                    if not out:
                        sel.modify(sock, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(65536)
            except ssl.SSLWantReadError:
                sel.modify(sock, selectors.EVENT_READ)
                continue
            except ssl.SSLWantWriteError:
                sel.modify(sock, selectors.EVENT_WRITE)
                continue
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                sys.exit(f"idle_clients: connection failed: {e}")
            if not chunk:
                sys.exit("idle_clients: the proxy closed a connection after one request")
            got += chunk
            pending[sock][1] = got
            if response_complete(got):
                sel.unregister(sock)
                del pending[sock]
                keep.append(sock)
    sel.close()


def main():
    args = sys.argv[1:]
    tls = None
    if args[:1] == ["--tls"]:
        tls, args = tls_context(), args[1:]
    if len(args) < 3:
        sys.exit(__doc__)
    port, count = int(args[0]), int(args[1])
    pids = [int(p) for p in args[2:]]
    deadline = time.monotonic() + TIMEOUT
    keep = []
    serve_batch(port, 1, deadline, keep, tls)
    time.sleep(0.5)
    before = rss_kib(pids)
    while len(keep) < count:
        serve_batch(port, min(BATCH, count - len(keep)), deadline, keep, tls)
    # Let the proxy settle before reading: lazy frees, deferred work, and
    # buffers a proxy keeps for a while after a burst (corelb lets go of
    # those unused for a second, checked every second).
    time.sleep(SETTLE)
    after = rss_kib(pids)
    print(before, after, len(keep))
    for sock in keep:
        sock.close()


if __name__ == "__main__":
    main()
