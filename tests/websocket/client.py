"""WebSocket clients (Python's `websockets`) for tests/proxy_websocket.rs.

    client.py URL echo COUNT SEED   COUNT messages of mixed sizes up to 1 MiB,
                                    text and binary, echoed byte for byte
    client.py URL close             the close handshake, from either side
    client.py URL idle SECONDS      one echo, then wait: the proxy must close
                                    the idle tunnel, not before SECONDS
    client.py URL many N COUNT      N tunnels at once, COUNT echoes each

Prints one JSON line with what it did; exits 1 with the reason otherwise.
"""

import asyncio
import json
import random
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE = 2 * 1024 * 1024
MIB = 1024 * 1024


def fail(why):
    print(why, file=sys.stderr, flush=True)
    sys.exit(1)


def sizes(count, rng):
    """Mostly small messages, some medium, a few up to 1 MiB, and the edges
    of the frame-length encodings (125/126, 65535/65536) and 1 MiB itself."""
    fixed = [0, 1, 125, 126, 127, 65535, 65536, 65537, MIB]
    out = fixed[:count]
    while len(out) < count:
        r = rng.random()
        if r < 0.85:
            out.append(rng.randint(0, 1024))
        elif r < 0.98:
            out.append(rng.randint(1025, 64 * 1024))
        else:
            out.append(rng.randint(64 * 1024, MIB))
    rng.shuffle(out)
    return out


def message(size, rng, i):
    if i % 3 == 0:
        # text: printable ASCII and some multi-byte characters
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 é€🙂"
        text = "".join(rng.choice(alphabet) for _ in range(min(size, 4096)))
        return (text * (size // max(len(text), 1) + 1))[:size] if size else ""
    return rng.randbytes(size)


async def echo(url, count, seed):
    rng = random.Random(seed)
    plan = sizes(count, rng)
    messages = [message(size, rng, i) for i, size in enumerate(plan)]
    total = 0
    async with connect(url, max_size=MAX_MESSAGE, compression=None) as ws:

        async def send_all():
            for m in messages:
                await ws.send(m)

        sender = asyncio.create_task(send_all())
        for i, sent in enumerate(messages):
            got = await asyncio.wait_for(ws.recv(), 60)
            if type(got) is not type(sent) or got != sent:
                fail(f"message {i} ({len(sent)} {type(sent).__name__}) came back different "
                     f"({len(got)} {type(got).__name__})")
            total += len(sent.encode() if isinstance(sent, str) else sent)
        await sender
        await ws.close(1000, "done")
        if ws.close_code != 1000:
            fail(f"close code {ws.close_code}")
    print(json.dumps({"messages": count, "bytes": total, "largest": max(plan)}))


async def close(url):
    # client-initiated
    async with connect(url) as ws:
        await ws.send("hi")
        if await ws.recv() != "hi":
            fail("no echo before closing")
        await ws.close(1000, "bye")
        rcvd = ws.protocol.close_rcvd
        if rcvd is None or rcvd.code != 1000 or rcvd.reason != "bye":
            fail(f"the server's close frame did not come back through: {rcvd}")
    # server-initiated
    base = url.rstrip("/")
    async with connect(base + "/server-close") as ws:
        if await ws.recv() != "closing":
            fail("no message before the server's close")
        try:
            await asyncio.wait_for(ws.recv(), 10)
            fail("the server's close did not arrive")
        except ConnectionClosed as e:
            if e.rcvd is None or e.rcvd.code != 4001 or e.rcvd.reason != "server bye":
                fail(f"wrong close frame from the server: {e.rcvd}")
    print(json.dumps({"client_close": 1000, "server_close": 4001}))


async def idle(url, seconds):
    async with connect(url, ping_interval=None) as ws:
        await ws.send("before")
        if await ws.recv() != "before":
            fail("no echo before going idle")
        start = time.monotonic()
        try:
            await asyncio.wait_for(ws.recv(), 30)
            fail("a message arrived on an idle tunnel")
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            fail("the idle tunnel was not closed within 30 s")
        waited = time.monotonic() - start
        if waited < seconds * 0.9:
            fail(f"closed after {waited:.2f} s, before the idle timeout of {seconds} s")
    print(json.dumps({"closed_after_s": round(waited, 2)}))


async def many(url, n, count):
    async def one(k):
        rng = random.Random(k)
        async with connect(url, max_size=MAX_MESSAGE, compression=None) as ws:
            for i in range(count):
                m = rng.randbytes(rng.randint(0, 8192)) if i % 2 else f"tunnel {k} message {i}"
                await ws.send(m)
                if await asyncio.wait_for(ws.recv(), 60) != m:
                    fail(f"tunnel {k}: message {i} came back different")
            # hold every tunnel open until all have echoed once
            await ws.close()
        return 1

    done = await asyncio.gather(*(one(k) for k in range(n)))
    print(json.dumps({"tunnels": sum(done), "messages_each": count}))


def main():
    url, mode, *args = sys.argv[1:]
    if mode == "echo":
        asyncio.run(echo(url, int(args[0]), int(args[1])))
    elif mode == "close":
        asyncio.run(close(url))
    elif mode == "idle":
        asyncio.run(idle(url, float(args[0])))
    elif mode == "many":
        asyncio.run(many(url, int(args[0]), int(args[1])))
    else:
        fail(f"unknown mode {mode}")


main()
