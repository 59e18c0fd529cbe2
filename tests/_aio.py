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


async def children(zk, path):
    """The children of ``path``, or [] when they cannot be read."""
    try:
        return await zk.get_children(path)
    except Exception:
        return []


async def settled(zk, path, want=0, timeout=10):
    """Wait until ``path`` has ``want`` children (at most ``timeout``
    seconds); return them."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        found = await children(zk, path)
        if len(found) == want or loop.time() > end:
            return found
        await asyncio.sleep(0.02)
