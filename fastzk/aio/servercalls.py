"""What :class:`~fastzk.aio.AsyncClient` asks the connected server outside
the session: four-letter commands and the server's version."""

from __future__ import annotations

import asyncio
import re
from typing import Tuple

from kazoo.exceptions import ConnectionLoss, KazooException

from fastzk.aio.lifecycle import Lifecycle

__all__ = ["ServerCalls"]


class ServerCalls(Lifecycle):
    """Four-letter commands on a connection of their own (a part of
    :class:`~fastzk.aio.AsyncClient`)."""

    _timeout_ms: int

    async def command(self, cmd: bytes = b"ruok") -> str:
        """Send a four-letter management command to the connected server
        (on a connection of its own); its textual answer.

        :raises ConnectionLoss: no server is connected.
        """
        self._check_loop()
        connection = self._connection
        where = connection.connected_host if connection is not None else None
        if where is None:
            raise ConnectionLoss("No connection to server")
        host, port = where
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=self._ssl,
            server_hostname=host if self._ssl else None),
            self._timeout_ms / 1000.0)
        try:
            writer.write(cmd)
            answer = await asyncio.wait_for(reader.read(65536),
                                            self._timeout_ms / 1000.0)
        finally:
            writer.close()
        return answer.decode("utf-8", "replace")

    async def server_version(self, retries: int = 3) -> Tuple[int, ...]:
        """The version of the connected server, e.g. ``(3, 8, 4)``."""
        for _ in range(retries + 1):
            data = await self.command(b"envi")
            for line in data.splitlines():
                key, _sep, value = line.partition("=")
                if key.strip() == "zookeeper.version":
                    match = re.match(r"([\d.]+)", value.strip())
                    if match:
                        version = tuple(int(d) for d in
                                        match.group(1).strip(".").split("."))
                        if len(version) > 1:
                            return version
        raise KazooException("Unable to fetch useable server version")
