"""The asyncio ReadLock and WriteLock on a real ZooKeeper: readers share,
writers exclude, the free failed attempt, cancellation at every await,
and interop with the thread client and kazoo on one
lock path."""

import asyncio

import pytest
from kazoo.exceptions import LockTimeout

from fastzk.recipes.locknames import EXCLUSIVE, SHARED, parse
from _aio import children, client, run, settled
from _cancel import every_cancellation

PATH = "/locks/rw"


def _children(zk):
    return children(zk, PATH)


def _settled(zk, want=0):
    return settled(zk, PATH, want)


@run
async def test_readers_share_and_writers_exclude(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        r1 = a.ReadLock(PATH, "r1")
        r2 = b.ReadLock(PATH, "r2")
        assert await r1.acquire(blocking=False)
        assert await r2.acquire(blocking=False)
        assert r1.held and r2.held
        reader_tokens = [r1.fencing_token, r2.fencing_token]
        markers = sorted(parse(c).marker for c in await a.get_children(PATH))
        assert markers == [SHARED, SHARED]
        writer = b.WriteLock(PATH, "w")
        assert not await writer.acquire(blocking=False)
        with pytest.raises(LockTimeout):
            await writer.acquire(timeout=0.3)
        waiter = asyncio.ensure_future(writer.acquire())
        await asyncio.sleep(0.3)
        assert not waiter.done()
        # A reader coming after a queued writer waits for it.
        assert not await a.ReadLock(PATH).acquire(blocking=False)
        await r1.release()
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await r2.release()
        assert await asyncio.wait_for(waiter, 10)
        assert writer.fencing_token > max(reader_tokens)
        (node,) = await a.get_children(PATH)
        assert parse(node).marker == EXCLUSIVE
        assert (await a.get(PATH + "/" + node))[0] == b"w"
        assert not await a.ReadLock(PATH).acquire(blocking=False)
        assert not await a.WriteLock(PATH).acquire(blocking=False)
        await writer.release()
        async with a.ReadLock(PATH) as held:
            assert held.is_acquired
            async with b.ReadLock(PATH) as other:
                assert other.is_acquired
        assert not held.is_acquired
        assert await _settled(a) == []
    finally:
        await a.stop()
        await b.stop()


@run
async def test_failed_attempts_write_nothing(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        writer = a.WriteLock(PATH)
        assert await writer.acquire()
        before = await b.exists(PATH)
        for _ in range(10):
            assert not await b.ReadLock(PATH).acquire(blocking=False)
            assert not await b.WriteLock(PATH).acquire(blocking=False)
        after = await b.exists(PATH)
        # cversion counts child creates and deletes: none happened.
        assert (after.cversion, after.pzxid) == (before.cversion,
                                                 before.pzxid)
        await writer.release()
        reader = a.ReadLock(PATH)
        assert await reader.acquire()
        before = await b.exists(PATH)
        for _ in range(10):
            assert not await b.WriteLock(PATH).acquire(blocking=False)
        after = await b.exists(PATH)
        assert (after.cversion, after.pzxid) == (before.cversion,
                                                 before.pzxid)
        await reader.release()
    finally:
        await a.stop()
        await b.stop()


@run
async def test_cancellation_at_every_await_leaves_no_node(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        await a.ensure_path(PATH)
        for make in (a.ReadLock, a.WriteLock):
            locks = []

            async def attempt():
                locks.append(make(PATH))
                return locks[-1].acquire()

            async def check(k, outcome):
                if outcome is True:
                    await locks[-1].release()
                else:
                    assert isinstance(outcome, asyncio.CancelledError), (
                        make, k, outcome)
                assert await _settled(a) == [], (make, k)

            assert await every_cancellation(attempt, check) > 1
        # Waiting behind a holder: a writer behind a reader, a reader
        # behind a writer.
        for holder_make, make in ((b.ReadLock, a.WriteLock),
                                  (b.WriteLock, a.ReadLock)):
            holder = holder_make(PATH)
            assert await holder.acquire()

            async def waiting():
                return make(PATH).acquire(timeout=0.3)

            async def check_waiting(k, outcome):
                assert isinstance(outcome, (asyncio.CancelledError,
                                            LockTimeout)), (make, k, outcome)
                assert len(await _settled(a, 1)) == 1, (make, k)
                assert holder.is_acquired

            assert await every_cancellation(waiting, check_waiting) > 2
            await holder.release()
            assert await _settled(a) == []
    finally:
        await a.stop()
        await b.stop()


@run
async def test_async_thread_and_kazoo_readers_and_writers(
        zk_hosts, zk, kazoo_client):
    az = await client(zk_hosts)
    try:
        kazoo_reader = kazoo_client.ReadLock(PATH, "kazoo")
        thread_writer = zk.WriteLock(PATH, "thread")
        async_reader = az.ReadLock(PATH, "async-r")
        async_writer = az.WriteLock(PATH, "async-w")
        assert kazoo_reader.acquire(timeout=5)
        assert await async_reader.acquire(blocking=False)
        assert not await async_writer.acquire(blocking=False)
        assert not thread_writer.acquire(blocking=False)
        kazoo_reader.release()
        await async_reader.release()
        assert await async_writer.acquire(timeout=5)
        assert not kazoo_client.ReadLock(PATH).acquire(blocking=False)
        assert not zk.ReadLock(PATH).acquire(blocking=False)
        assert not thread_writer.acquire(blocking=False)
        await async_writer.release()
        assert thread_writer.acquire(timeout=5)
        assert not await async_reader.acquire(blocking=False)
        assert not await async_writer.acquire(blocking=False)
        thread_writer.release()
        thread_reader = zk.ReadLock(PATH)
        assert thread_reader.acquire(timeout=5)
        assert await async_reader.acquire(blocking=False)
        assert not kazoo_client.WriteLock(PATH).acquire(blocking=False)
        thread_reader.release()
        await async_reader.release()
        assert await _settled(az) == []
    finally:
        await az.stop()
