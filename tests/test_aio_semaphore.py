"""The asyncio Semaphore on a real ZooKeeper: the lease count, the free
failed attempt, cancellation at every await, and
interop with the thread client's and kazoo's Semaphore on one path."""

import asyncio

import pytest
from kazoo.exceptions import LockTimeout

from _aio import children, client, run, settled
from _cancel import every_cancellation

PATH = "/sems/item"
LOCK = PATH + "-__lock__"


def _children(zk, path=PATH):
    return children(zk, path)


def _settled(zk, want=0, path=PATH):
    return settled(zk, path, want)


@run
async def test_leases_are_counted(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        first = a.Semaphore(PATH, "first", max_leases=2)
        second = b.Semaphore(PATH, "second", max_leases=2)
        assert await first.acquire(blocking=False)
        assert await second.acquire()
        assert first.held and second.held
        assert await first.acquire()  # held already, as kazoo's
        assert (await a.get(PATH))[0] == b"2"
        assert sorted(await first.lease_holders()) == ["first", "second"]
        third = a.Semaphore(PATH, "third", max_leases=2)
        assert not await third.acquire(blocking=False)
        with pytest.raises(LockTimeout) as raised:
            await third.acquire(timeout=0.3)
        assert PATH in str(raised.value)
        waiter = asyncio.ensure_future(third.acquire())
        await asyncio.sleep(0.3)
        assert not waiter.done()
        assert await first.release()
        assert not await first.release()
        assert await asyncio.wait_for(waiter, 10)
        assert sorted(await third.lease_holders()) == ["second", "third"]
        with pytest.raises(ValueError):
            await b.Semaphore(PATH, max_leases=3).acquire()
        await second.release()
        await third.release()
        async with a.Semaphore(PATH, max_leases=2) as held:
            assert held.is_acquired
        assert not held.is_acquired
        assert await _settled(a) == []
        assert await _settled(a, path=LOCK) == []
    finally:
        await a.stop()
        await b.stop()


@run
async def test_failed_attempt_on_full_semaphore_writes_nothing(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        holder = a.Semaphore(PATH)
        assert await holder.acquire()
        before = [await b.exists(p) for p in (PATH, LOCK)]
        for _ in range(10):
            assert not await b.Semaphore(PATH).acquire(blocking=False)
        with pytest.raises(ValueError):
            await b.Semaphore(PATH, max_leases=5).acquire(blocking=False)
        after = [await b.exists(p) for p in (PATH, LOCK)]
        # cversion counts child creates and deletes: none happened.
        assert [(s.cversion, s.pzxid) for s in after] == \
            [(s.cversion, s.pzxid) for s in before]
        await holder.release()
    finally:
        await a.stop()
        await b.stop()


@run
async def test_failed_attempt_while_lock_held_writes_nothing(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        holder = a.Semaphore(PATH)
        assert await holder.acquire()
        # A blocking contender holds the lease lock while it waits.
        waiter = asyncio.ensure_future(a.Semaphore(PATH).acquire())
        assert len(await _settled(a, 1, path=LOCK)) == 1
        await holder.release()
        assert await asyncio.wait_for(waiter, 10)
        contender = asyncio.ensure_future(a.Semaphore(PATH).acquire())
        assert len(await _settled(a, 1, path=LOCK)) == 1
        before = await b.exists(LOCK)
        for _ in range(10):
            assert not await b.Semaphore(PATH).acquire(blocking=False)
        after = await b.exists(LOCK)
        assert (after.cversion, after.pzxid) == (before.cversion,
                                                 before.pzxid)
        contender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await contender
        assert await _settled(a, path=LOCK) == []
    finally:
        await a.stop()
        await b.stop()


@run
async def test_cancellation_at_every_await_leaves_no_node(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        semaphores = []

        async def attempt():
            semaphores.append(a.Semaphore(PATH))
            return semaphores[-1].acquire()

        async def check(k, outcome):
            if outcome is True:
                await semaphores[-1].release()
            else:
                assert isinstance(outcome, asyncio.CancelledError), (k, outcome)
            assert await _settled(a) == [], k
            assert await _settled(a, path=LOCK) == [], k

        assert await every_cancellation(attempt, check) > 2
        holder = b.Semaphore(PATH)
        assert await holder.acquire()

        async def waiting():
            return a.Semaphore(PATH).acquire(timeout=0.3)

        async def check_waiting(k, outcome):
            assert isinstance(outcome, (asyncio.CancelledError, LockTimeout)), (
                k, outcome)
            assert len(await _settled(a, 1)) == 1, k
            assert await _settled(a, path=LOCK) == [], k

        assert await every_cancellation(waiting, check_waiting) > 2
        await holder.release()
        assert await _settled(a) == []
    finally:
        await a.stop()
        await b.stop()


@run
async def test_async_thread_and_kazoo_semaphores_share_leases(
        zk_hosts, zk, kazoo_client):
    az = await client(zk_hosts)
    try:
        kazoo_sem = kazoo_client.Semaphore(PATH, "kazoo", max_leases=2)
        thread_sem = zk.Semaphore(PATH, "thread", max_leases=2)
        async_sem = az.Semaphore(PATH, "async", max_leases=2)
        assert kazoo_sem.acquire(timeout=5)
        assert await async_sem.acquire(timeout=5)
        assert not thread_sem.acquire(blocking=False)
        assert sorted(kazoo_sem.lease_holders()) == ["async", "kazoo"]
        kazoo_sem.release()
        assert thread_sem.acquire(timeout=5)
        assert not await az.Semaphore(PATH, max_leases=2).acquire(
            blocking=False)
        assert not kazoo_sem.acquire(blocking=False)
        await async_sem.release()
        thread_sem.release()
        assert await _settled(az) == []
    finally:
        await az.stop()
