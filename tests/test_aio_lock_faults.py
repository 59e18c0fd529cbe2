"""The asyncio Lock under a fault at every request it makes.

The fault proxy cuts the connection at the n-th request of given opcodes,
before the server sees it ("request") or after it ran, its reply lost
("reply"), as tests/test_lock.py does for the thread Lock.  The asyncio
Lock's requests, per scenario:

- acquire: create and getChildren, pipelined in one round trip;
- non-blocking acquire: a getChildren (the look), then the pair;
- non-blocking acquire of a held lock: the look only;
- waiting behind a rival: the pair, then exists with a watch on the
  predecessor;
- a timed-out or lost attempt, and release: one delete (the cleanup).

After each: the session survived (same session id), the attempt gave the
expected outcome, exactly the expected nodes exist (no duplicate from a
lost create, no leftover contender) and the lock still excludes a rival
on a direct connection (a thread fastzk client).
"""

import asyncio

import pytest
from kazoo.exceptions import LockTimeout

import fastzk
from fastzk.testing.proxy import request_opcode

from _aio import children, client, run, settled
from test_lock import (
    CREATES,
    OP_DELETE,
    OP_EXISTS,
    OP_GET_CHILDREN,
    OP_GET_DATA,
    cut_at,
    nth_request,
)

PATH = "/f"

# (scenario, opcodes, n): the fault hits the n-th request of ``opcodes``.
FAULT_STEPS = [
    ("acquire", CREATES, 1),
    ("acquire", (OP_GET_CHILDREN,), 1),  # pipelined with the create
    ("acquire_nb", (OP_GET_CHILDREN,), 1),  # the look before creating
    ("acquire_nb", CREATES, 1),
    ("acquire_nb", (OP_GET_CHILDREN,), 2),  # the list sent with the create
    ("held_nb", (OP_GET_CHILDREN,), 1),  # a held lock: only a look
    ("wait", CREATES, 1),
    ("wait", (OP_GET_CHILDREN,), 1),
    ("wait", (OP_EXISTS,), 1),  # watching the predecessor
    ("timeout", (OP_DELETE,), 1),  # the cleanup of a timed-out attempt
    ("race", (OP_DELETE,), 1),  # the cleanup of a lost non-blocking race
    ("race", CREATES, 1),
    ("release", (OP_DELETE,), 1),
]


def _step_id(step):
    scenario, opcodes, n = step
    names = {OP_DELETE: "delete", OP_EXISTS: "exists",
             OP_GET_CHILDREN: "children"}
    return "%s-%s%d" % (scenario, names.get(opcodes[0], "create"), n)


async def _until(predicate, what, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("timed out waiting for %s" % what)
        await asyncio.sleep(0.01)


async def _outcome(awaitable):
    """The attempt's result, or LockTimeout's class when it timed out."""
    try:
        return await awaitable
    except LockTimeout:
        return LockTimeout


@pytest.fixture
def rival_client(zk_hosts):
    """A thread fastzk client on a direct connection."""
    zk = fastzk.KazooClient(hosts=zk_hosts, timeout=10.0)
    zk.start(timeout=30)
    yield zk
    zk.stop()
    zk.close()


@pytest.mark.parametrize("mode", ["request", "reply"])
@pytest.mark.parametrize("step", FAULT_STEPS, ids=_step_id)
@run
async def test_fault_at_every_step(zk_hosts, zk_proxy_hosts, proxy,
                                   rival_client, step, mode):
    """Cut the connection at one request of the asyncio lock's protocol;
    the session survives, the attempt ends as without the fault, and
    afterwards exactly the expected nodes exist and the lock still
    excludes a rival."""
    scenario, opcodes, n = step
    zk = await client(zk_proxy_hosts)
    checker = await client(zk_hosts)

    async def nodes():
        return sorted(await children(checker, PATH))

    try:
        session = zk.client_id[0]
        # The lock path exists, so every attempt makes the same requests.
        await checker.ensure_path(PATH)
        lock = zk.Lock(PATH, "ours")
        rival = fastzk.Lock(rival_client, PATH, "rival")

        if scenario == "release":
            assert await lock.acquire(timeout=5)
        if scenario in ("wait", "timeout", "held_nb"):
            assert rival.acquire(timeout=5)

        raced = []
        if scenario == "race":
            # The lock looks free when we look; at our create a rival takes
            # it (the proxy's thread holds our create while the rival, on a
            # direct connection, acquires), so our create runs after it.
            def tap(body):
                if request_opcode(body) in CREATES and not raced:
                    raced.append(rival.acquire(blocking=False))
                return False
            tap_hook = proxy.cut_on_request(tap)

        watches = []
        if scenario == "wait":
            # Counts the exists requests setting the watch on the rival's
            # node (the cut one, and the one of the attempt made again).
            def watch_tap(body):
                if request_opcode(body) == OP_EXISTS:
                    watches.append(body)
                return False
            watch_hook = proxy.cut_on_request(watch_tap)

        hook = cut_at(proxy, mode, nth_request(opcodes, n))
        if scenario == "acquire":
            result = await lock.acquire(timeout=10)
        elif scenario in ("acquire_nb", "held_nb", "race"):
            result = await lock.acquire(blocking=False)
        elif scenario == "timeout":
            result = await _outcome(lock.acquire(timeout=1.0))
        elif scenario == "release":
            result = await lock.release()
        else:  # wait
            waiter = asyncio.ensure_future(lock.acquire(timeout=15))
            await _until(hook.fired.is_set, "the fault")
            # Waiting behind the rival again, after the fault: the watch
            # of the attempt that was not cut has been asked for.
            wanted = 2 if opcodes == (OP_EXISTS,) else 1
            await _until(lambda: len(watches) >= wanted,
                         "the watch on the rival's node")
            watch_hook.cancel()
            await _until(lambda: zk.connected, "reconnection")
            # Ours and the rival's: no duplicate, no leftover.
            assert len(await nodes()) == 2, await nodes()
            assert lock.node in await nodes()
            assert not waiter.done()
            other = fastzk.Lock(rival_client, PATH)
            assert other.acquire(blocking=False) is False
            assert rival.release() is True
            result = await asyncio.wait_for(waiter, 15)
        if scenario == "race":
            tap_hook.cancel()
            assert raced == [True]

        assert hook.fired.is_set(), "the fault was not injected"
        await _until(lambda: zk.connected, "reconnection")
        assert zk.client_id[0] == session, "the session must survive"

        if scenario in ("acquire", "acquire_nb", "wait"):
            assert result is True
            assert lock.is_acquired and lock.held
            # Exactly one node: ours, and no duplicate from a lost create.
            assert await nodes() == [lock.node]
            assert rival.acquire(blocking=False) is False
            assert await lock.release() is True
            assert await nodes() == []
            assert rival.acquire(blocking=False) is True
            rival.release()
        elif scenario in ("timeout", "race", "held_nb"):
            assert result is (LockTimeout if scenario == "timeout" else False)
            assert not lock.is_acquired
            # Nothing of ours left: only the holder's node (the cleanup is
            # confirmed before the attempt returns).
            assert await nodes() == [rival.node]
            rival.release()
            assert await lock.acquire(blocking=False) is True
            assert rival.acquire(blocking=False) is False
            await lock.release()
        else:  # release
            assert result is True
            assert await nodes() == []
            assert rival.acquire(blocking=False) is True
            rival.release()
        assert await nodes() == []
    finally:
        await zk.stop()
        await checker.stop()


# A free asyncio Semaphore's acquire: getData and getChildren of the
# semaphore node (in one round trip), its lock's create and getChildren,
# getChildren of the leases (with a watch), the lease's create, the lock's
# delete; release: the lease's delete.
SEMAPHORE_STEPS = [
    ("acquire", (OP_GET_DATA,), 1),
    ("acquire", (OP_GET_CHILDREN,), 1),
    ("acquire", CREATES, 1),  # the lock's contender
    ("acquire", (OP_GET_CHILDREN,), 2),
    ("acquire", (OP_GET_CHILDREN,), 3),  # the leases
    ("acquire", CREATES, 2),  # the lease
    ("acquire", (OP_DELETE,), 1),  # the lock's release
    ("release", (OP_DELETE,), 1),
]


@pytest.mark.parametrize("mode", ["request", "reply"])
@pytest.mark.parametrize("step", SEMAPHORE_STEPS, ids=lambda s: "%s-%s%d" % (
    s[0], {OP_GET_DATA: "get", OP_GET_CHILDREN: "children",
           OP_DELETE: "delete"}.get(s[1][0], "create"), s[2]))
@run
async def test_semaphore_fault_at_every_step(zk_hosts, zk_proxy_hosts, proxy,
                                             rival_client, step, mode):
    """The same for the asyncio Semaphore: the session survives, the lease
    is taken (or released) once, and the lock guarding the count is left
    with no node."""
    scenario, opcodes, n = step
    zk = await client(zk_proxy_hosts)
    checker = await client(zk_hosts)
    path = "/sem-f"
    try:
        session = zk.client_id[0]
        await checker.create(path, b"1")
        semaphore = zk.Semaphore(path, "ours", max_leases=1)
        rival = rival_client.Semaphore(path, "rival", max_leases=1)
        if scenario == "release":
            assert await semaphore.acquire(timeout=5)
        hook = cut_at(proxy, mode, nth_request(opcodes, n))
        if scenario == "acquire":
            assert await semaphore.acquire(timeout=10) is True
            assert semaphore.is_acquired
            assert await children(checker, path) == [semaphore.lease]
            assert rival.acquire(blocking=False) is False
            assert await semaphore.release() is True
        else:
            assert await semaphore.release() is True
        assert hook.fired.is_set(), "the fault was not injected"
        await _until(lambda: zk.connected, "reconnection")
        assert zk.client_id[0] == session, "the session must survive"
        assert await settled(checker, path) == []
        assert await children(checker, semaphore.lock_path) == []
        assert rival.acquire(blocking=False) is True
        rival.release()
    finally:
        await checker.delete(path, recursive=True)
        await checker.delete(path + "-__lock__", recursive=True)
        await zk.stop()
        await checker.stop()
