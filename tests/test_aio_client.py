"""The asyncio client against a real ZooKeeper: CRUD, errors, pipelining,
watches, transactions, ACLs, loop checks."""

import asyncio
import threading

import pytest
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    NoNodeError,
    NodeExistsError,
    NoWatcherError,
    NotEmptyError,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import make_digest_acl

import fastzk
from fastzk import AddWatchMode, WatcherType
from fastzk.aio import AsyncClient

from _aio import client, run


@run
async def test_crud(zk_hosts):
    async with AsyncClient(zk_hosts, timeout=10.0) as zk:
        assert zk.state == KazooState.CONNECTED
        assert await zk.ensure_path("/app/a/b")
        assert await zk.exists("/app/a/b") is not None
        assert await zk.create("/app/x", b"1") == "/app/x"
        data, stat = await zk.get("/app/x")
        assert data == b"1" and stat.version == 0
        stat = await zk.set("/app/x", b"2")
        assert stat.version == 1
        assert sorted(await zk.get_children("/app")) == ["a", "x"]
        names, stat = await zk.get_children("/app", include_data=True)
        assert stat.numChildren == 2
        path, stat = await zk.create("/app/s-", b"", sequence=True,
                                     ephemeral=True, include_data=True)
        assert path.startswith("/app/s-") and stat.ephemeralOwner
        assert await zk.create("/deep/er/node", makepath=True) == "/deep/er/node"
        made = await zk.create("/seqdir/q/", sequence=True, makepath=True)
        assert made.startswith("/seqdir/q/") and len(made) == 20
        assert await zk.sync("/app") == "/app"
        assert await zk.delete("/app/x")
        assert await zk.exists("/app/x") is None
        assert await zk.delete("/app", recursive=True)
        assert await zk.exists("/app") is None


@run
async def test_errors_are_kazoos(zk_hosts):
    zk = await client(zk_hosts)
    try:
        with pytest.raises(NoNodeError):
            await zk.get("/missing")
        await zk.create("/n")
        with pytest.raises(NodeExistsError):
            await zk.create("/n")
        with pytest.raises(BadVersionError):
            await zk.set("/n", b"", version=7)
        await zk.create("/n/c")
        with pytest.raises(NotEmptyError):
            await zk.delete("/n")
        with pytest.raises(NoNodeError):
            await zk.create("/a/b")
        with pytest.raises(TypeError):
            await zk.create("/n2", "text")
        with pytest.raises(NoWatcherError):
            await zk.remove_all_watches("/n", WatcherType.DATA)
    finally:
        await zk.stop()
    with pytest.raises(ConnectionClosedError):
        await zk.get("/n")


@run
async def test_gather_pipelines_2000_gets(zk_hosts):
    zk = await client(zk_hosts)
    try:
        await asyncio.gather(*(zk.create("/p%d" % i, b"%d" % i)
                               for i in range(100)))
        replies = await asyncio.gather(*(zk.get("/p%d" % (i % 100))
                                         for i in range(2000)))
        assert [d for d, _ in replies] == [b"%d" % (i % 100)
                                          for i in range(2000)]
    finally:
        await zk.stop()


@run
async def test_async_reads_are_futures_sent_at_once(zk_hosts):
    zk = await client(zk_hosts)
    try:
        await zk.create("/f/a", b"A", makepath=True)
        futures = [zk.get_children_async("/f"), zk.get_async("/f/a"),
                   zk.exists_async("/f/missing"), zk.get_async("/f/missing"),
                   zk.get_children_async("/f", include_data=True)]
        assert all(isinstance(f, asyncio.Future) for f in futures)
        # Sent at once: in flight before anything awaited them.
        assert len(zk.machine.pending) == len(futures)
        children, (data, stat), missing, error, with_stat = (
            await asyncio.gather(*futures, return_exceptions=True))
        assert children == ["a"] and data == b"A" and stat.version == 0
        assert missing is None and isinstance(error, NoNodeError)
        assert with_stat[0] == ["a"] and with_stat[1].numChildren == 1
        events = []
        await zk.get_async("/f/a", watch=events.append)
        await zk.set("/f/a", b"B")
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.02)
        assert [e.path for e in events] == ["/f/a"]
        with pytest.raises(TypeError):
            zk.get_children_async("/f", include_data=1)
    finally:
        await zk.stop()


@run
async def test_one_shot_watches_plain_and_coroutine(zk_hosts):
    zk = await client(zk_hosts)
    try:
        await zk.create("/w", b"")
        seen = []
        got = asyncio.Event()

        def on_data(event):
            seen.append(("data", event.type, event.path))

        async def on_children(event):
            await asyncio.sleep(0)
            seen.append(("children", event.type, event.path))
            got.set()

        await zk.get("/w", watch=on_data)
        await zk.get_children("/w", watch=on_children)
        await zk.set("/w", b"x")
        await zk.create("/w/c")
        await asyncio.wait_for(got.wait(), 10)
        assert ("data", EventType.CHANGED, "/w") in seen
        assert ("children", EventType.CHILD, "/w") in seen
    finally:
        await zk.stop()


@run
async def test_persistent_recursive_watch(zk_hosts):
    zk = await client(zk_hosts)
    try:
        await zk.create("/r")
        events = asyncio.Queue()
        await zk.add_watch("/r", events.put_nowait,
                           AddWatchMode.PERSISTENT_RECURSIVE)
        await zk.create("/r/a")
        await zk.create("/r/a/b")
        got = [await asyncio.wait_for(events.get(), 10) for _ in range(2)]
        assert [(e.type, e.path) for e in got] == [
            (EventType.CREATED, "/r/a"), (EventType.CREATED, "/r/a/b")]
        assert await zk.remove_all_watches("/r", WatcherType.ANY)
    finally:
        await zk.stop()


@run
async def test_transaction(zk_hosts):
    zk = await client(zk_hosts)
    try:
        txn = zk.transaction()
        txn.create("/t1", b"a")
        txn.create("/t2", b"b")
        assert await txn.commit() == ["/t1", "/t2"]
        txn = zk.transaction()
        txn.check("/t1", 5)
        txn.delete("/t2")
        results = await txn.commit()
        assert isinstance(results[0], BadVersionError)
        assert isinstance(results[1], Exception)  # as kazoo reports it
        assert await zk.exists("/t2") is not None
    finally:
        await zk.stop()


@run
async def test_acls_and_auth(zk_hosts):
    zk = await client(zk_hosts)
    try:
        acl = make_digest_acl("user", "pw", all=True)
        await zk.add_auth("digest", "user:pw")
        await zk.create("/secret", b"s", acl=[acl])
        acls, stat = await zk.get_acls("/secret")
        assert acls == [acl]
        other = await client(zk_hosts)
        try:
            from kazoo.exceptions import NoAuthError

            with pytest.raises(NoAuthError):
                await other.get("/secret")
        finally:
            await other.stop()
        stat = await zk.set_acls("/secret", [acl], version=0)
        assert stat.aversion == 1
    finally:
        await zk.stop()


@run
async def test_states_listener_and_iterator(zk_hosts):
    zk = AsyncClient(zk_hosts, timeout=10.0)
    heard = []
    zk.add_listener(heard.append)
    states = zk.states()
    assert await states.__anext__() == KazooState.LOST
    await zk.start()
    assert await states.__anext__() == KazooState.CONNECTED
    await zk.stop()
    assert await states.__anext__() == KazooState.LOST
    await states.aclose()
    assert heard == [KazooState.CONNECTED, KazooState.LOST]


def test_other_loop_or_thread_is_refused(zk_hosts):
    loop = asyncio.new_event_loop()
    try:
        zk = AsyncClient(zk_hosts, timeout=10.0)
        loop.run_until_complete(zk.start())

        async def use():
            await zk.get("/")

        with pytest.raises(RuntimeError, match="other than the one"):
            asyncio.run(use())
        errors = []

        def in_thread():
            try:
                zk._call(lambda r: None)
            except RuntimeError as exc:
                errors.append(exc)

        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        assert "outside its event loop" in str(errors[0])
        loop.run_until_complete(zk.get("/"))
        loop.run_until_complete(zk.stop())
    finally:
        loop.close()


def test_package_export():
    assert fastzk.AsyncClient is AsyncClient


@run
async def test_server_version_and_command(zk_hosts):
    zk = await client(zk_hosts)
    try:
        version = await zk.server_version()
        assert version[:1] == (3,) and len(version) >= 2
        assert await zk.command(b"ruok") == "imok"
    finally:
        await zk.stop()


@run
async def test_retry_gives_up_after_its_tries(zk_hosts):
    from kazoo.exceptions import ConnectionLoss
    from kazoo.retry import KazooRetry, RetryFailedError

    zk = await client(zk_hosts, command_retry=KazooRetry(max_tries=3,
                                                         delay=0.01))
    try:
        calls = []

        async def flaky(n):
            calls.append(n)
            if len(calls) < 2:
                raise ConnectionLoss()
            return await zk.exists("/")

        assert await zk.retry(flaky, 1) is not None
        calls.clear()

        async def broken():
            calls.append(0)
            raise ConnectionLoss()

        with pytest.raises(RetryFailedError):
            await zk.retry(broken)
        assert len(calls) == 3
    finally:
        await zk.stop()


@run
async def test_add_auth_while_requests_are_in_flight(zk_hosts):
    zk = await client(zk_hosts)
    try:
        acl = make_digest_acl("user", "pw", all=True)
        gets = [zk.exists("/") for _ in range(200)]
        results = await asyncio.gather(zk.add_auth("digest", "user:pw"),
                                       *gets)
        assert results[0] is True
        await zk.create("/mine", b"", acl=[acl])
        assert (await zk.get("/mine"))[0] == b""
    finally:
        await zk.stop()


@run
async def test_no_threads_of_its_own(zk_hosts):
    before = threading.active_count()
    zk = await client(zk_hosts)
    try:
        await asyncio.gather(*(zk.exists("/") for _ in range(100)))
        lock = zk.Lock("/l")
        assert await lock.acquire()
        await lock.release()
        assert threading.active_count() == before
    finally:
        await zk.stop()
