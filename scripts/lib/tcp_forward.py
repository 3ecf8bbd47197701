"""Forwards TCP connections from LISTEN_HOST:LISTEN_PORT to 127.0.0.1:TARGET_PORT.

`sam local` runs functions in containers on Docker's bridge network, where 127.0.0.1 is the
container itself: this makes a server that listens on loopback only (the throw-away
PostgreSQL, which trusts loopback) reachable at the bridge's gateway address.
Usage: python3 tcp_forward.py LISTEN_HOST LISTEN_PORT TARGET_PORT
"""

import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(listen_host, listen_port, target_port):
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = await asyncio.start_server(handle, listen_host, listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
