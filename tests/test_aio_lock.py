"""The asyncio Lock on a real ZooKeeper: exclusion, the free failed
attempt, cancellation at every await (each suspension point of acquire
and release, see _cancel.py), interop with the thread client and kazoo
on one lock path, and every recipe's lost session."""

import asyncio

import pytest
from kazoo.exceptions import LockTimeout

from _aio import children, client, run, settled
from _cancel import every_cancellation

PATH = "/locks/item"


def _children(zk):
    return children(zk, PATH)


def _settled(zk, want=0):
    return settled(zk, PATH, want)


@run
async def test_acquire_release_and_exclusion(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        first = a.Lock(PATH, "a")
        assert await first.acquire(blocking=False)
        assert first.is_acquired and first.held
        first_token = first.fencing_token
        assert first_token is not None
        (node,) = await a.get_children(PATH)
        assert (await a.get(PATH + "/" + node))[0] == b"a"
        second = b.Lock(PATH, "b")
        assert not await second.acquire(blocking=False)
        waiter = asyncio.ensure_future(second.acquire())
        await asyncio.sleep(0.3)
        assert not waiter.done()
        assert await first.release()
        assert await asyncio.wait_for(waiter, 10)
        assert second.fencing_token > first_token
        assert first.fencing_token is None  # released
        # The same object again: it waits for its own release, within
        # the timeout (the lock is not re-entrant, as in kazoo).
        with pytest.raises(LockTimeout):
            await second.acquire(timeout=0.3)
        assert second.is_acquired
        with pytest.raises(LockTimeout):
            await a.Lock(PATH).acquire(timeout=0.3)
        await second.release()
        assert await _settled(a) == []
        async with a.Lock(PATH) as held:
            assert held.is_acquired
        assert not held.is_acquired
    finally:
        await a.stop()
        await b.stop()


@run
async def test_failed_attempt_on_held_lock_writes_nothing(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        holder = a.Lock(PATH)
        assert await holder.acquire()
        before = await b.exists(PATH)
        for _ in range(20):
            assert not await b.Lock(PATH).acquire(blocking=False)
        after = await b.exists(PATH)
        # cversion counts child creates and deletes: none happened.
        assert after.cversion == before.cversion
        assert after.pzxid == before.pzxid
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.parametrize("blocking", [True, False])
@run
async def test_cancellation_at_every_await_of_acquire(zk_hosts, blocking):
    zk = await client(zk_hosts)
    try:
        locks = []

        async def fresh_attempt():
            # The blocking attempt starts with the lock path missing, so
            # it also passes through the awaits that create it.
            if blocking:
                await zk.delete("/locks", recursive=True)
            else:
                await zk.ensure_path(PATH)
            locks.append(zk.Lock(PATH))
            return locks[-1].acquire(blocking=blocking)

        async def check(k, outcome):
            lock = locks[-1]
            if outcome is True:
                assert lock.is_acquired
                await lock.release()
            else:
                assert isinstance(outcome, asyncio.CancelledError), (k, outcome)
                assert not lock.is_acquired
            assert await _settled(zk) == [], k

        covered = await every_cancellation(fresh_attempt, check)
        # Blocking: create (no node), ensure_path, create again;
        # non-blocking: getChildren, then create.
        assert covered > 2, covered
    finally:
        await zk.stop()


@run
async def test_cancellation_at_every_await_of_a_waiting_acquire(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        holder = a.Lock(PATH)
        assert await holder.acquire()

        async def check(k, outcome):
            assert isinstance(outcome, (asyncio.CancelledError, LockTimeout)), (
                k, outcome)
            # Only the holder's node is left, and it still holds.
            assert len(await _settled(a, 1)) == 1, k
            assert holder.is_acquired

        async def waiting_attempt():
            return b.Lock(PATH).acquire(timeout=0.3)

        assert await every_cancellation(waiting_attempt, check) > 2
        await holder.release()
    finally:
        await a.stop()
        await b.stop()


@run
async def test_cancellation_at_every_await_of_release(zk_hosts):
    a = await client(zk_hosts)
    b = await client(zk_hosts)
    try:
        locks = []

        async def check(k, outcome):
            lock = locks[-1]
            assert outcome is True or isinstance(
                outcome, asyncio.CancelledError), (k, outcome)
            # Cancelled or not, the release goes through (shielded): the
            # node goes, and the next contender gets the lock only now.
            assert await _settled(a) == [], k
            assert not lock.is_acquired
            other = b.Lock(PATH)
            assert await other.acquire(blocking=False), k
            await other.release()

        async def make_release():
            lock = a.Lock(PATH)
            assert await lock.acquire()
            locks.append(lock)
            return lock.release()

        assert await every_cancellation(make_release, check) > 1
    finally:
        await a.stop()
        await b.stop()


@run
async def test_thread_async_and_kazoo_lockers_exclude_each_other(
        zk_hosts, zk, kazoo_client):
    az = await client(zk_hosts)
    try:
        kazoo_lock = kazoo_client.Lock(PATH, "kazoo")
        thread_lock = zk.Lock(PATH, "thread")
        async_lock = az.Lock(PATH, "async")
        assert kazoo_lock.acquire(timeout=5)
        assert not await async_lock.acquire(blocking=False)
        assert not thread_lock.acquire(blocking=False)
        kazoo_lock.release()
        assert await async_lock.acquire(timeout=5)
        assert not thread_lock.acquire(blocking=False)
        assert not kazoo_lock.acquire(blocking=False)
        await async_lock.release()
        assert thread_lock.acquire(timeout=5)
        assert not await async_lock.acquire(blocking=False)
        assert not kazoo_lock.acquire(blocking=False)
        thread_lock.release()
        assert await _settled(az) == []
    finally:
        await az.stop()


@run
async def test_paths_normalised_as_kazoo(zk_hosts, kazoo_client):
    zk = await client(zk_hosts)
    try:
        lock = zk.Lock("locks//item/")
        assert lock.path == PATH
        assert zk.ReadLock("/locks/item/").path == PATH
        with pytest.raises(ValueError):
            zk.WriteLock("/locks/../item")
        with pytest.raises(TypeError):
            zk.Semaphore(b"/locks/item")
        assert await lock.acquire()
        # kazoo normalises the same string to the same path.
        assert not kazoo_client.Lock("locks//item/").acquire(blocking=False)
        await lock.release()
    finally:
        await zk.stop()


@run
async def test_every_recipe_lost_and_on_lost_after_session_expiry(
        zk_hosts, zk_server):
    from fastzk.testing.zkserver import expire_session

    zk = await client(zk_hosts, timeout=4.0)
    other = await client(zk_hosts)
    try:
        seen = []
        reader = zk.ReadLock(PATH + "-rw")
        writer = zk.WriteLock(PATH + "-w")
        plain = zk.Lock(PATH)
        semaphore = zk.Semaphore(PATH + "-sem")
        recipes = (reader, writer, plain, semaphore)
        for recipe in recipes:
            assert await recipe.acquire()
            recipe.on_lost(seen.append)
        called = asyncio.Event()

        async def coroutine_callback(lock):
            called.set()

        reader.on_lost(coroutine_callback)
        session_id, passwd = zk.client_id
        expire_session(zk_server.address, session_id, passwd)
        for recipe in recipes:
            await asyncio.wait_for(recipe.lost.wait(), 15)
            assert not recipe.is_acquired and not recipe.held
        await asyncio.wait_for(called.wait(), 5)
        assert sorted(map(id, seen)) == sorted(map(id, recipes))
        # The server deleted the ephemeral nodes: others get them.
        assert await other.WriteLock(PATH + "-rw").acquire(timeout=10)
        assert await other.Lock(PATH).acquire(timeout=10)
        assert await other.Semaphore(PATH + "-sem").acquire(timeout=10)
        # The next acquire on the new session clears lost.
        assert await writer.acquire(timeout=10)
        assert not writer.lost.is_set()
        await writer.release()
        assert not await reader.release()
        assert not await semaphore.release()
    finally:
        await zk.stop()
        await other.stop()
