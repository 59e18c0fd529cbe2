"""The asyncio client under faults: ensemble failover, and storms of cuts
while requests are in flight."""

import asyncio
import random

import pytest
from kazoo.exceptions import ConnectionLoss, NodeExistsError
from kazoo.protocol.states import EventType, KazooState

from fastzk.aio import AsyncClient

from _aio import client, run


async def _until(predicate, timeout=20.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met within %.0fs" % timeout)
        await asyncio.sleep(0.02)


@pytest.mark.ensemble
@run
async def test_failover_keeps_session_lock_and_watches(zk_ensemble,
                                                       zk_ensemble_hosts):
    zk = await client(zk_ensemble_hosts, timeout=6.0)
    writer = await client(zk_ensemble_hosts, timeout=6.0)
    try:
        session = zk.client_id[0]
        lock = zk.Lock("/fo-lock", "holder")
        assert await lock.acquire(timeout=5)
        await zk.create("/fo-eph", ephemeral=True)
        await zk.ensure_path("/fo-tree")
        one_shot = asyncio.Queue()
        await zk.get("/fo-tree", watch=one_shot.put_nowait)
        async with zk.watch("/fo-tree", recursive=True) as events:
            host, port = zk._connection.connected_host
            victim = [s for s in zk_ensemble.servers if s.port == port][0]
            victim.kill()
            for i in range(20):
                await writer.retry(writer.create, "/fo-tree/n%d" % i, b"x")
            await writer.retry(writer.set, "/fo-tree", b"changed")
            await _until(lambda: zk.connected
                         and zk._connection.connected_host[1] != port)
            assert zk.client_id[0] == session
            assert lock.is_acquired and lock.held
            assert await zk.exists("/fo-eph") is not None
            event = await asyncio.wait_for(one_shot.get(), 10)
            assert event.type == EventType.CHANGED
            reset = await events.get(10)
            assert reset.type == EventType.NONE
            assert not await writer.Lock("/fo-lock").acquire(blocking=False)
    finally:
        await zk.stop()
        await writer.stop()
        for member in zk_ensemble.servers:
            if not member.running:
                member.start()


@run
async def test_storm_of_cuts_converges(zk_proxy_hosts, proxy, zk_hosts):
    zk = await client(zk_proxy_hosts, timeout=10.0)
    checker = await client(zk_hosts)
    rng = random.Random(7)
    states = []
    zk.add_listener(states.append)
    try:
        await zk.ensure_path("/storm")
        made = set()
        lost = 0

        async def make(i):
            nonlocal lost
            path = "/storm/n%d" % i
            while True:
                try:
                    await zk.create(path, b"%d" % i)
                    made.add(path)
                    return
                except NodeExistsError:
                    made.add(path)  # the lost reply's create went through
                    return
                except ConnectionLoss:
                    lost += 1
                    await asyncio.sleep(0.01)

        async def cutter():
            for _ in range(8):
                await asyncio.sleep(rng.uniform(0.01, 0.1))
                proxy.cut()

        await asyncio.gather(cutter(), *(make(i) for i in range(300)))
        # The last cut may reach the client only now.
        await asyncio.sleep(0.3)
        await _until(lambda: zk.connected)
        names = await checker.get_children("/storm")
        assert sorted(names) == sorted(p.rsplit("/", 1)[1] for p in made)
        assert len(names) == 300
        assert not zk.machine.pending
        assert KazooState.SUSPENDED in states
        # Every value read back is the one written.
        values = await asyncio.gather(*(zk.get("/storm/" + n) for n in names))
        assert all(v == n[1:].encode() for (v, _), n in zip(values, names))
    finally:
        await zk.stop()
        await checker.stop()


@run
async def test_start_timeout_names_the_failures():
    from kazoo.handlers.threading import KazooTimeoutError

    zk = AsyncClient("127.0.0.1:1", timeout=3.0)
    with pytest.raises(KazooTimeoutError, match="127.0.0.1:1"):
        await zk.start(timeout=0.5)
    assert zk.state == KazooState.LOST
