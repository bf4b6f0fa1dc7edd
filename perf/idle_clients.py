#!/usr/bin/env python3
"""perf/idle_clients.py: what a client connection costs a proxy in memory,
with its request in flight and then idle.

    idle_clients.py [--pattern eager|burst] [--tls] PORT COUNT PID...

Opens COUNT connections to 127.0.0.1:PORT (with --tls: HTTPS, a full TLS
handshake each, the certificate not checked), sends one `GET /` on each and
reads its whole response (so every connection is past its first request and
kept alive), then leaves them all idle and reads the resident memory (VmRSS)
of the proxy's processes PID... (nginx: master and workers) three times.
Two patterns:

  eager  each client sends its request as soon as it is connected (and,
         with --tls, its handshake done), in batches of BATCH connections:
         few requests are in flight at once;
  burst  all COUNT connect first (with --tls: and finish their handshakes)
         and stay silent a moment, then all send at the same moment: COUNT
         requests are in flight together, the proxy's per-request peak.

Prints one line:

    rss_before_kib rss_at_once_kib rss_after_2s_kib rss_after_10s_kib rss_peak_kib connections

rss_before is read after one connection has made one request, so what a
proxy sets up once is not counted against the connections; at_once right
after the last response, then 2 s and 10 s later (idle time being the
point: what a proxy keeps after a burst); peak is the processes' high-water
mark (VmHWM) after the burst. Bounded: gives up (exit 1) if the connections
are not all served within TIMEOUT seconds.
"""

import selectors
import socket
import ssl
import sys
import time

BATCH = 500
TIMEOUT = 120.0
# Seconds after the last response at which RSS is read again.
SETTLE = (2.0, 10.0)
# Burst: how long the connected clients stay silent before sending, so the
# proxy has accepted every one of them first.
QUIET = 1.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle_clients\r\n\r\n"


def status_kib(pids, field):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
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


def open_sockets(port, count, tls):
    """`count` connections on their way (non-blocking connects); `tls`: an
    SSLContext to wrap them in (handshake not started), or None."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if tls:
            sock = tls.wrap_socket(sock, server_hostname="localhost", do_handshake_on_connect=False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    return socks


def step_handshake(sock, sel):
    """One step of `sock`'s TLS handshake once it is writable (connected):
    True when done, else `sel` waits for what the handshake wants next."""
    try:
        sock.do_handshake()
        return True
    except ssl.SSLWantReadError:
        sel.modify(sock, selectors.EVENT_READ)
    except ssl.SSLWantWriteError:
        sel.modify(sock, selectors.EVENT_WRITE)
    except OSError as e:
        sys.exit(f"idle_clients: TLS handshake failed: {e}")
    return False


def connect(port, count, deadline, tls):
    """`count` connections, each connected (writable) and, with `tls`, past
    its handshake; none sent a request yet."""
    sel = selectors.DefaultSelector()
    socks = open_sockets(port, count, tls)
    for sock in socks:
        sel.register(sock, selectors.EVENT_WRITE)
    waiting = len(socks)
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit(f"idle_clients: {waiting} connections not made within {TIMEOUT:.0f} s")
        for key, _ in sel.select(timeout=min(left, 1.0)):
            sock = key.fileobj
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                sys.exit(f"idle_clients: connection failed: {err}")
            if tls and not step_handshake(sock, sel):
                continue
            sel.unregister(sock)
            waiting -= 1
    sel.close()
    return socks


def serve(socks, deadline, keep, shaken):
    """Send one request on each of `socks` and read its response; add the
    connections to `keep`. `shaken`: False when `socks` are TLS sockets
    whose handshake is still to do (eager)."""
    sel = selectors.DefaultSelector()
    # Per connection: [bytes left to send, bytes received, handshake done].
    pending = {}
    for sock in socks:
        pending[sock] = [REQUEST, b"", shaken]
        sel.register(sock, selectors.EVENT_WRITE)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit(f"idle_clients: {len(pending)} connections not served within {TIMEOUT:.0f} s")
        for key, _ in sel.select(timeout=min(left, 1.0)):
            sock = key.fileobj
            out, got, ready = pending[sock]
            if not ready:
                if step_handshake(sock, sel):
                    pending[sock][2] = True
                    sel.modify(sock, selectors.EVENT_WRITE)
                continue
            try:
                if out:
                    sent = sock.send(out)
                    pending[sock][0] = out = out[sent:]
                    if not out:
                        sel.modify(sock, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(65536)
            except ssl.SSLWantReadError:
                # TLS 1.3 session tickets, no response bytes yet.
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
    pattern, tls = "eager", None
    while args[:1] in (["--pattern"], ["--tls"]):
        if args[0] == "--tls":
            tls, args = tls_context(), args[1:]
        elif len(args) >= 2:
            pattern, args = args[1], args[2:]
        else:
            break
    if len(args) < 3 or pattern not in ("eager", "burst"):
        sys.exit(__doc__)
    port, count = int(args[0]), int(args[1])
    pids = [int(p) for p in args[2:]]
    deadline = time.monotonic() + TIMEOUT
    keep = []
    serve(connect(port, 1, deadline, tls), deadline, keep, True)
    time.sleep(0.5)
    before = status_kib(pids, "VmRSS")
    if pattern == "eager":
        while len(keep) < count:
            # Each sends as soon as it is writable (connected) and, with
            # TLS, its handshake is done.
            serve(open_sockets(port, min(BATCH, count - len(keep)), tls), deadline, keep, tls is None)
    else:
        socks = []
        while len(socks) < count - 1:
            socks += connect(port, min(BATCH, count - 1 - len(socks)), deadline, tls)
        time.sleep(QUIET)
        serve(socks, deadline, keep, True)
    done = time.monotonic()
    rss = [status_kib(pids, "VmRSS")]
    for at in SETTLE:
        time.sleep(max(0.0, done + at - time.monotonic()))
        rss.append(status_kib(pids, "VmRSS"))
    peak = status_kib(pids, "VmHWM")
    print(before, *rss, peak, len(keep))
    for sock in keep:
        sock.close()


if __name__ == "__main__":
    main()
