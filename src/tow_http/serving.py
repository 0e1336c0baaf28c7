"""`tow serve`'s HTTP server: uvicorn's, ending the live streams before it waits for open requests.

uvicorn's graceful shutdown stops accepting connections, waits up to ``timeout_graceful_shutdown``
(``runtime.shutdown_grace_seconds``) for every open request to finish, and only then tells the app (the ASGI
lifespan ``shutdown``, where the live hub would close). A live stream (server-sent events) never finishes by
itself, so a single open page would hold the shutdown for the whole grace period and then be cancelled. This
server first runs ``before_draining`` — the live hub's ``close``, which tells every stream to end (and refuses
new ones) — so the grace period is left to ordinary requests, and a browser's EventSource reconnects to another
process at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence

import uvicorn

log = logging.getLogger(__name__)


class TowServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, before_draining: Sequence[Callable[[], None]] = ()) -> None:
        super().__init__(config)
        self._before_draining = tuple(before_draining)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hook in self._before_draining:
            try:
                await asyncio.to_thread(hook)  # closing the hub joins its listening thread: not on the loop
            except Exception:  # noqa: BLE001 - the shutdown goes on; uvicorn's grace period still bounds it
                log.exception("ending the live streams before shutdown failed")
        await super().shutdown(sockets)


def serve(config: uvicorn.Config, *, before_draining: Sequence[Callable[[], None]] = ()) -> bool:
    """Serve until a signal stops the server (as ``uvicorn.run`` for one process, no reload); False when it could
    not start (the port is taken, the app failed its startup)."""
    server = TowServer(config, before_draining=before_draining)
    server.run()
    return server.started
