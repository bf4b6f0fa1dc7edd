"""A WebSocket echo server (Python's `websockets`) for tests/proxy_websocket.rs.

Prints its port on the first line of stdout, then serves until stdin closes.
Every path echoes each message back as it came (text as text, binary as
binary), except `/server-close`, where the server starts the close
handshake itself with code 4001.
"""

import asyncio
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE = 2 * 1024 * 1024


async def handler(ws):
    if ws.request.path == "/server-close":
        await ws.send("closing")
        await ws.close(4001, "server bye")
        return
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        # corelb cut the tunnel (idle timeout, shutdown): what the tests
        # want, and not worth a traceback.
        pass


async def main():
    async with serve(
        handler, "127.0.0.1", 0, max_size=MAX_MESSAGE, compression=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        # Until the test closes our stdin (or kills us).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
