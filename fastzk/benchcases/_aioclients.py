"""The asyncio clients the ``aio`` benchmark cases compare, by name:
``fastzk`` (:class:`fastzk.aio.AsyncClient`), ``aiozk`` (aiozk 0.32's
``ZKClient``) and ``bare`` (the wire format spoken by a bare protocol,
:mod:`fastzk.benchcases._aiolimit`), and the event loops they run on."""

import asyncio

from fastzk.benchcases import _aiolimit

#: The clients of the asyncio section, in the order their rounds run.
AIO_IMPLS = ("aiozk", "fastzk", "bare")

#: The result name of the bare protocol's rounds.
BARE = "aio-bare"

#: fastzk with reply batching off (``reply_batching=0``): in the gathered
#: case, beside the default client, to show what batching saves.
UNBATCHED = "fastzk-unbatched"

#: Its result name.
UNBATCHED_RESULT = "aio-fastzk-unbatched"


def aiozk_missing():
    """Why aiozk cannot be measured (not installed), or None."""
    try:
        import aiozk  # noqa: F401
    except ImportError:
        return "aiozk not installed (pip install aiozk==0.32.0)"
    return None


def uvloop_missing():
    """Why the uvloop rows cannot be measured, or None."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "uvloop not installed"
    return None


def new_loop(kind):
    """A new event loop: ``"asyncio"``'s default, or ``"uvloop"``'s."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if kind != "asyncio":
        raise ValueError("unknown event loop %r" % (kind,))
    return asyncio.new_event_loop()


class Client(object):
    """One session of ``impl``: ``get_children(path)`` and ``close()``,
    coroutines, whatever the client underneath."""

    def __init__(self, impl, raw):
        self.impl = impl
        self.raw = raw

    async def get_children(self, path):
        if self.impl == "bare":
            await self.raw.children(path, 1)
            return self.raw.last_children()
        return await self.raw.get_children(path)

    async def close(self):
        if self.impl == "bare":
            self.raw.close()
        elif self.impl == "aiozk":
            await self.raw.close()
        else:
            await self.raw.stop()
            await self.raw.close()


async def connect(impl, hosts, timeout=30.0):
    """A connected :class:`Client` of ``impl`` on the running loop."""
    if impl == "bare":
        return Client(impl, await _aiolimit.connect(hosts, timeout))
    if impl == "aiozk":
        import aiozk

        host, port = _aiolimit.first_host(hosts)
        chroot = hosts.split("/", 1)[1] if "/" in hosts else None
        raw = aiozk.ZKClient("%s:%d" % (host, port), chroot=chroot,
                             session_timeout=10)
        await asyncio.wait_for(raw.start(), timeout)
        return Client(impl, raw)
    if impl in ("fastzk", UNBATCHED):
        from fastzk.aio import AsyncClient

        options = {"reply_batching": 0} if impl == UNBATCHED else {}
        raw = AsyncClient(hosts, timeout=10.0, **options)
        await raw.start(timeout=timeout)
        return Client("fastzk", raw)
    raise ValueError("unknown asyncio client %r" % (impl,))


# -- a failed non-blocking lock attempt on a held lock ----------------------

async def hold(client, path):
    """Take the lock on ``path`` with ``client``'s own recipe; returns
    what :func:`contender` and :func:`release` need."""
    if client.impl == "aiozk":
        lock = client.raw.recipes.Lock(path)
        await lock.acquire(timeout=10)
        return lock
    lock = client.raw.Lock(path, "holder")
    assert await lock.acquire(timeout=10)
    return lock


async def release(lock):
    await lock.release()


def contender(client, path):
    """``attempt()``: one non-blocking attempt on the held lock at
    ``path``, whether it was won.

    fastzk: ``Lock.acquire(blocking=False)``.  aiozk 0.32's Lock has no
    non-blocking acquire (``acquire(timeout=0)`` returns at once without
    trying, a tiny timeout races the clock), so its attempt is its
    recipe's own steps with no wait: create the contender node, read the
    siblings, and, blocked, delete the node (kazoo's non-blocking attempt
    does the same).
    """
    if client.impl == "aiozk":
        lock = client.raw.recipes.Lock(path)
        label = lock.znode_label

        async def attempt():
            await lock.create_unique_znode(label)
            owned, contenders = await lock.analyze_siblings()
            if contenders[:owned[label]]:
                await lock.delete_unique_znode(label)
                return False
            return True
        return attempt
    lock = client.raw.Lock(path, "contender")

    async def attempt():
        return await lock.acquire(blocking=False)
    return attempt
