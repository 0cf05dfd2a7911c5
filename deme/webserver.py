"""The web child of ``deme run``: uvicorn, with a shutdown that never resets a connection.

On SIGTERM uvicorn stops accepting, then at once closes every connection with no request in
progress. Two kinds of client see that as a dropped connection although they did nothing
wrong (measured with bench/faults.py, graceful restarts at 20 signed SMS/s: about one reset
per five restarts):
- a connection just accepted whose request bytes are not read yet counts as idle;
- a keep-alive connection the client is reusing at that instant (a provider's pooled client).
So the old process first stops accepting (the shared socket keeps queueing connections for
the new one), then lets its connections end the way they end in normal operation: each
request in progress is answered with ``Connection: close``, and an idle keep-alive connection
runs out its ``timeout_keep_alive``. Only then does uvicorn's own shutdown run.
"""

from __future__ import annotations

import asyncio
import socket
import time

import uvicorn


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting; closing again in super().shutdown is harmless
        # A keep-alive connection idles out after timeout_keep_alive; one more second covers
        # a request that arrives on it just before.
        deadline = time.monotonic() + self.config.timeout_keep_alive + 1
        while self.server_state.connections and time.monotonic() < deadline:
            for connection in list(self.server_state.connections):
                cycle = getattr(connection, "cycle", None)
                if cycle is not None and not cycle.response_complete:
                    cycle.keep_alive = False  # answer this request, then close
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)
