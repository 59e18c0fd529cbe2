"""A tiny helper to run coroutine tests without pytest-asyncio."""

import asyncio
import functools

from fastzk.aio import AsyncClient


def run(coro_fn):
    """Decorator: run the coroutine test function in a fresh event loop
    (the fixtures are passed through), failing after 60 s."""

    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(coro_fn(*args, **kwargs), 60))

    return wrapper


async def client(hosts, **kwargs):
    """A started AsyncClient on ``hosts``."""
    kwargs.setdefault("timeout", 10.0)
    zk = AsyncClient(hosts, **kwargs)
    await zk.start()
    return zk
