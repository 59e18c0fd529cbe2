"""A tiny helper to run coroutine tests without pytest-asyncio.

``FASTZK_TEST_UVLOOP=1`` runs them on uvloop's event loop instead of
asyncio's (uvloop must then be importable).
"""

import asyncio
import functools
import os

from fastzk.aio import AsyncClient


def _new_loop():
    if os.environ.get("FASTZK_TEST_UVLOOP", "") not in ("", "0"):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(coro_fn):
    """Decorator: run the coroutine test function in a fresh event loop
    (the fixtures are passed through), failing after 60 s."""

    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        loop = _new_loop()
        try:
            asyncio.set_event_loop(loop)
            return loop.run_until_complete(
                asyncio.wait_for(coro_fn(*args, **kwargs), 60))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    return wrapper


async def client(hosts, **kwargs):
    """A started AsyncClient on ``hosts``."""
    kwargs.setdefault("timeout", 10.0)
    zk = AsyncClient(hosts, **kwargs)
    await zk.start()
    return zk
