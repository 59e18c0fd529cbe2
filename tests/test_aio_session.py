"""The asyncio client's session across faults: reconnect through a cut
keeps the session and its watches, a server-side expiry gives a new
session, a partition longer than the session timeout reports LOST."""

import asyncio

from kazoo.exceptions import (
    ConnectionDropped,
    ConnectionLoss,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType, KazooState

from fastzk.aio.wire import Wire
from fastzk.testing.zkserver import expire_session

from _aio import client, run


async def _wait_state(zk, state, timeout=15):
    async def wait():
        async for s in zk.states():
            if s == state:
                return
    await asyncio.wait_for(wait(), timeout)


@run
async def test_cut_keeps_session_and_restores_one_shot_watch(
        zk_proxy_hosts, proxy, writer):
    zk = await client(zk_proxy_hosts)
    try:
        await zk.create("/node", b"0")
        session = zk.client_id
        fired = asyncio.Queue()
        await zk.get("/node", watch=fired.put_nowait)
        heard = []
        zk.add_listener(heard.append)
        proxy.reject(True)
        proxy.cut()
        await _wait_state(zk, KazooState.SUSPENDED)
        writer.set("/node", b"changed while away")
        proxy.reject(False)
        await _wait_state(zk, KazooState.CONNECTED)
        assert zk.client_id == session
        # SetWatches with the last zxid seen: the server sends the missed
        # change.
        event = await asyncio.wait_for(fired.get(), 10)
        assert event.type == EventType.CHANGED and event.path == "/node"
        assert heard[:2] == [KazooState.SUSPENDED, KazooState.CONNECTED]
        assert (await zk.get("/node"))[0] == b"changed while away"
    finally:
        await zk.stop()


@run
async def test_requests_in_flight_fail_with_connection_loss(
        zk_proxy_hosts, proxy):
    zk = await client(zk_proxy_hosts)
    try:
        proxy.freeze()
        pending = asyncio.ensure_future(zk.get("/"))
        await asyncio.sleep(0.1)
        proxy.cut()
        proxy.unfreeze()
        try:
            await asyncio.wait_for(pending, 10)
        except ConnectionLoss:
            pass
        await _wait_state(zk, KazooState.CONNECTED)
        assert await zk.exists("/") is not None
    finally:
        await zk.stop()


@run
async def test_server_side_expiry_gives_a_new_session(zk_hosts, zk_server):
    zk = await client(zk_hosts, timeout=4.0)
    try:
        await zk.create("/eph", ephemeral=True)
        fired = asyncio.Queue()
        await zk.exists("/eph", watch=fired.put_nowait)
        old_id, passwd = zk.client_id
        states = []
        zk.add_listener(states.append)
        expire_session(zk_server.address, old_id, passwd)
        await _wait_state(zk, KazooState.LOST)
        await _wait_state(zk, KazooState.CONNECTED)
        assert KazooState.LOST in states
        assert zk.client_id[0] != old_id
        assert await zk.exists("/eph") is None
        event = await asyncio.wait_for(fired.get(), 10)
        assert event.type in (EventType.NONE, EventType.DELETED)
    finally:
        await zk.stop()


@run
async def test_partition_longer_than_session_timeout_is_lost(
        zk_proxy_hosts, proxy):
    zk = await client(zk_proxy_hosts, timeout=2.0)
    try:
        await zk.create("/eph", ephemeral=True)
        old_id = zk.client_id[0]
        loop = asyncio.get_running_loop()
        proxy.reject(True)
        proxy.freeze()
        started = loop.time()
        await _wait_state(zk, KazooState.LOST, timeout=10)
        elapsed = loop.time() - started
        negotiated = zk.negotiated_timeout / 1000.0
        assert negotiated * 0.5 <= elapsed <= negotiated + 2.0
        with_no_server = asyncio.ensure_future(zk.get("/"))
        proxy.reject(False)
        proxy.unfreeze()
        proxy.cut()
        await _wait_state(zk, KazooState.CONNECTED, timeout=15)
        assert zk.client_id[0] != old_id
        try:
            await with_no_server
        except SessionExpiredError:
            pass
        assert await zk.exists("/") is not None
    finally:
        await zk.stop()


@run
async def test_reconnect_jitter_leaves_the_global_random_state_alone(
        zk_proxy_hosts, proxy):
    """Failed reconnect rounds back off with jitter drawn from fastzk's
    own generator: an application's seeded global random state does not
    move."""
    import random

    zk = await client(zk_proxy_hosts)
    try:
        random.seed(20261203)
        state = random.getstate()
        proxy.reject(True)
        proxy.cut()
        await _wait_state(zk, KazooState.SUSPENDED)
        await asyncio.sleep(1.0)  # rounds refused, each after its backoff
        proxy.reject(False)
        await _wait_state(zk, KazooState.CONNECTED)
        assert random.getstate() == state
    finally:
        await zk.stop()


@run
async def test_writing_to_a_connection_the_server_reset_is_a_failed_attempt(
        zk_proxy_hosts, proxy):
    """A connection reset as soon as it is made (the proxy refusing) may be
    lost before the handshake's first write.  That write is dropped and
    the attempt fails with ConnectionDropped: on uvloop, whose closed
    transports raise RuntimeError on write, a raising write would end the
    connection task and leave the client disconnected for good."""
    zk = await client(zk_proxy_hosts)
    try:
        loop = asyncio.get_running_loop()
        host, port = proxy.address.split(":")
        proxy.reject(True)
        # The reset may also come before the connect call returns (an
        # OSError, which is a failed attempt too): try until one is made.
        for _ in range(100):
            wire = Wire(zk._connection)
            try:
                await loop.create_connection(lambda: wire, host, int(port))
                break
            except OSError:
                continue
        else:
            raise AssertionError("no connection was made before its reset")
        await asyncio.wait_for(asyncio.shield(wire.closed), 5)
        wire.write(b"\0\0\0\0")
        try:
            await wire.next_frame(1.0)
        except ConnectionDropped:
            pass
        else:
            raise AssertionError("a frame from a reset connection")
        proxy.reject(False)
        assert await zk.exists("/") is not None
    finally:
        await zk.stop()
