"""Lock paths and acquire arguments as kazoo takes them, on a real server.

- a lock on the root (``"/"``, e.g. the root of a chroot) is won, released
  and leaves nothing, and excludes kazoo's lock on the same root;
- the paths kazoo accepts (``"x"``, ``"/a/"``, ``"/a//b"``, ``""``) are
  accepted and normalised as kazoo's client normalises them: the nodes land
  where kazoo's land, so both exclude each other on the same path string,
  and kazoo's own Election runs on fastzk's client with them;
- paths ZooKeeper refuses fail at construction with ValueError naming the
  path, a Semaphore's errors name the user's path, not its internal lock's;
- ``acquire``'s ``blocking``/``timeout`` combinations give kazoo's answers
  and kazoo's exceptions (type and message).

The lock's client is fastzk's ``KazooClient`` or kazoo's own (``clients``).
"""

import threading

import kazoo.client
import pytest
from kazoo.exceptions import LockTimeout
from kazoo.recipe.election import Election as KazooElection
from kazoo.recipe.lock import Lock as KazooLock
from kazoo.recipe.lock import ReadLock as KazooReadLock
from kazoo.recipe.lock import Semaphore as KazooSemaphore
from kazoo.recipe.lock import WriteLock as KazooWriteLock

import fastzk
from fastzk import Lock, ReadLock, Semaphore, WriteLock
from test_lock import NODE_RE, Clients, settled, wait_for

FASTZK_LOCKS = {"Lock": Lock, "ReadLock": ReadLock, "WriteLock": WriteLock,
                "Semaphore": Semaphore}
KAZOO_LOCKS = {"Lock": KazooLock, "ReadLock": KazooReadLock,
               "WriteLock": KazooWriteLock, "Semaphore": KazooSemaphore}

# Lock path -> where kazoo's client puts its nodes (relative to the chroot).
KAZOO_NORMALISED = {"x": "/x", "/a/": "/a", "/a//b": "/a/b", "": "/",
                    "//": "/", "a/b/": "/a/b"}


@pytest.fixture(params=["fastzk", "kazoo"])
def clients(request):
    """Client factory; ``clients.kind`` is the lock's client."""
    made = Clients(request.param)
    yield made
    made.close()


def children(admin, path):
    return sorted(admin.get_children(path)) if admin.exists(path) else []


def lock_nodes(admin, path):
    return [name for name in children(admin, path) if NODE_RE.match(name)]


def outcome(call):
    """``call()``'s result, or its exception as ``(type, message)``."""
    try:
        return call()
    except Exception as exc:
        return type(exc), str(exc)


# -- the root ---------------------------------------------------------------------

@pytest.mark.parametrize("cls", [Lock, ReadLock, WriteLock])
@pytest.mark.parametrize("cached", [False, True])
def test_lock_on_the_root_of_a_chroot(zk_hosts, zk_admin, zk_chroot, clients,
                                      cls, cached):
    kwargs = {"cached_lock_checks": True} if cached else {}
    if cached and clients.kind != "fastzk":
        kwargs = {}
    client = clients(zk_hosts, **kwargs)
    lock = cls(client, "/", "me")
    assert lock.acquire(blocking=False) is True
    assert lock_nodes(zk_admin, zk_chroot) == [lock.node]
    assert lock.contenders() == ["me"]
    assert lock.release() is True
    settled(client)
    assert children(zk_admin, zk_chroot) == []
    assert lock.acquire(timeout=5) is True
    assert lock_nodes(zk_admin, zk_chroot) == [lock.node]
    assert lock.release() is True
    settled(client)
    assert children(zk_admin, zk_chroot) == []


def test_root_lock_waits_for_its_predecessor(zk_hosts, zk_admin, zk_chroot,
                                             clients):
    first = Lock(clients(zk_hosts), "/", "first")
    second = Lock(clients(zk_hosts), "/", "second")
    assert first.acquire(timeout=5)
    got = []
    waiter = threading.Thread(
        target=lambda: got.append(second.acquire(timeout=10)))
    waiter.start()
    wait_for(lambda: len(lock_nodes(zk_admin, zk_chroot)) == 2,
             what="the second contender's node")
    assert not got
    first.release()
    waiter.join(10)
    assert got == [True]
    second.release()
    settled(second.client)
    assert children(zk_admin, zk_chroot) == []


def test_root_locks_of_kazoo_and_fastzk_exclude_each_other(
        zk_hosts, zk_admin, zk_chroot, clients):
    ours = Lock(clients(zk_hosts), "/", "fastzk")
    theirs = KazooLock(clients(zk_hosts, kind="kazoo"), "/", "kazoo")
    assert theirs.acquire(timeout=5)
    assert ours.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        ours.acquire(timeout=0.3)
    got = []
    waiter = threading.Thread(target=lambda: got.append(ours.acquire(timeout=10)))
    waiter.start()
    wait_for(lambda: len(lock_nodes(zk_admin, zk_chroot)) == 2,
             what="fastzk's contender node")
    assert ours.contenders() == ["kazoo", "fastzk"]
    theirs.release()
    waiter.join(10)
    assert got == [True]
    assert theirs.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        theirs.acquire(timeout=0.3)
    ours.release()
    assert theirs.acquire(timeout=5)
    theirs.release()
    settled(ours.client)
    assert children(zk_admin, zk_chroot) == []


def test_lock_on_the_root_without_chroot(zk_server, zk_admin, clients):
    lock = Lock(clients(zk_server.address), "/", "me")
    rival = KazooLock(clients(zk_server.address, kind="kazoo"), "/")
    assert lock.acquire(blocking=False) is True
    assert lock.node in zk_admin.get_children("/")
    assert rival.acquire(blocking=False) is False
    assert lock.release() is True
    settled(lock.client)
    assert lock_nodes(zk_admin, "/") == []


# -- paths kazoo accepts -------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(KAZOO_NORMALISED))
def test_paths_kazoo_accepts_land_where_kazoo_puts_them(
        zk_hosts, zk_admin, zk_chroot, clients, path):
    where = zk_chroot + KAZOO_NORMALISED[path].rstrip("/")
    ours = Lock(clients(zk_hosts), path, "fastzk")
    theirs = KazooLock(clients(zk_hosts, kind="kazoo"), path, "kazoo")
    assert ours.path == path  # kazoo keeps the string it was given
    assert ours.acquire(blocking=False) is True
    assert lock_nodes(zk_admin, where) == [ours.node]
    assert theirs.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        theirs.acquire(timeout=0.3)
    assert ours.contenders() == ["fastzk"]
    ours.release()
    assert theirs.acquire(timeout=5) is True
    assert lock_nodes(zk_admin, where) == [theirs.node]
    assert ours.acquire(blocking=False) is False
    theirs.release()
    assert ours.acquire(timeout=5) is True
    ours.release()
    settled(ours.client)
    assert lock_nodes(zk_admin, where) == []


# kazoo's ensure_path cannot make "a/b/" (a relative path with a trailing
# slash) while "/a" is missing, and kazoo's Semaphore starts with it.
SHARED_PATHS = [path for path in sorted(KAZOO_NORMALISED) if path != "a/b/"]


@pytest.mark.parametrize("path", SHARED_PATHS)
@pytest.mark.parametrize("name", ["ReadLock", "WriteLock", "Semaphore"])
def test_shared_locks_and_semaphores_take_kazoo_paths(
        zk_hosts, zk_admin, zk_chroot, clients, path, name):
    ours = FASTZK_LOCKS[name](clients(zk_hosts), path, "fastzk")
    theirs = KAZOO_LOCKS[name](clients(zk_hosts, kind="kazoo"), path, "kazoo")
    if name == "ReadLock":  # readers share; a writer excludes them
        theirs = KazooWriteLock(theirs.client, path, "kazoo")
    if name == "Semaphore" and (path == "" or path.endswith("/")):
        # kazoo's Semaphore puts its lock at path + "-__lock__", here a
        # child of the semaphore's node, and counts it as a lease: with one
        # lease it is never won, by kazoo or fastzk.
        assert theirs.acquire(blocking=False) is False
        assert ours.acquire(blocking=False) is False
        return
    assert ours.acquire(blocking=False) is True
    assert theirs.acquire(blocking=False) is False
    ours.release()
    assert theirs.acquire(timeout=5) is True
    assert ours.acquire(blocking=False) is False
    theirs.release()
    settled(ours.client)
    where = zk_chroot + KAZOO_NORMALISED[path].rstrip("/")
    assert lock_nodes(zk_admin, where) == []


@pytest.mark.parametrize("path", sorted(KAZOO_NORMALISED))
def test_kazoo_election_on_fastzk_client(zk_hosts, path):
    made = Clients("fastzk")
    try:
        leader = made(zk_hosts)
        assert isinstance(leader, fastzk.KazooClient)
        follower = made(zk_hosts, kind="kazoo")
        first = leader.Election(path, "first")
        second = KazooElection(follower, path, "second")
        elected = []
        release = threading.Event()

        def lead(name):
            elected.append(name)
            release.wait(10)

        threads = [threading.Thread(target=first.run, args=(lead, "first"))]
        threads[0].start()
        wait_for(lambda: elected == ["first"], what="the first leader")
        threads.append(threading.Thread(target=second.run,
                                        args=(lead, "second")))
        threads[1].start()
        wait_for(lambda: first.contenders() == ["first", "second"],
                 what="both contenders")
        assert elected == ["first"]
        release.set()
        wait_for(lambda: elected == ["first", "second"],
                 what="the second leader")
        for thread in threads:
            thread.join(10)
        assert first.contenders() == []
    finally:
        made.close()


# -- paths refused ----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/a/./b", "/a/../b", "/a/.", "/a/..", "/.",
                                  "..", "a/./b"])
def test_relative_components_are_refused_like_kazoo(zk_hosts, clients, path):
    """kazoo's client refuses them with ValueError ("relative paths not
    allowed") before any request; fastzk's locks do when constructed."""
    client = clients(zk_hosts)
    with pytest.raises(ValueError) as kazoo_error:
        KazooLock(clients(zk_hosts, kind="kazoo"), path).acquire(timeout=5)
    assert "relative paths not allowed" in str(kazoo_error.value)
    for cls in FASTZK_LOCKS.values():
        with pytest.raises(ValueError) as error:
            cls(client, path)
        assert repr(path) in str(error.value)
        assert "relative paths not allowed" in str(error.value)


@pytest.mark.parametrize("path", ["/a\x00b", "/a\x01", "/a\x7f", "/a\x9f",
                                  "/a\ud800", "/a\ue000", "/a\ufff0",
                                  "/\U0001f600", "x\x01/"])
def test_characters_zookeeper_refuses_fail_at_construction(zk_hosts, clients,
                                                           path):
    client = clients(zk_hosts)
    for cls in FASTZK_LOCKS.values():
        with pytest.raises(ValueError) as error:
            cls(client, path)
        assert repr(path) in str(error.value)
        assert "__lock__" not in str(error.value)


@pytest.mark.parametrize("path", [b"/x", None, 1])
def test_a_path_that_is_not_a_str_is_a_type_error(zk_hosts, clients, path):
    client = clients(zk_hosts)
    for cls in FASTZK_LOCKS.values():
        with pytest.raises(TypeError) as error:
            cls(client, path)
        assert "path must be a str" in str(error.value)


def test_semaphore_timeout_names_the_semaphore(zk_hosts, zk_admin, zk_chroot,
                                               clients):
    """The semaphore's internal lock is held (a contender between taking it
    and taking its lease): the timeout names the semaphore's path."""
    client = clients(zk_hosts)
    gate = KazooLock(clients(zk_hosts, kind="kazoo"), "/sem-__lock__")
    assert gate.acquire(timeout=5)
    semaphore = Semaphore(client, "/sem", "me")
    with pytest.raises(LockTimeout) as error:
        semaphore.acquire(timeout=0.3)
    assert str(error.value) == (
        "Failed to acquire semaphore on /sem after 0.3 seconds")
    gate.release()
    assert semaphore.acquire(timeout=5)
    semaphore.release()


# -- acquire's arguments -------------------------------------------------------------------

ARGUMENTS = [{"blocking": False, "timeout": 1},
             {"blocking": False, "timeout": 0},
             {"blocking": False, "timeout": -1},
             {"blocking": False},
             {"timeout": -2}, {"timeout": -0.5},
             {"timeout": -1}, {"timeout": 0}, {"timeout": 0.3}]


def kazoo_answer(name, kwargs, held):
    """What kazoo 2.11 answers: its method lock (a threading.Lock) refuses
    a timeout in non-blocking mode and negative ones but -1; 0 and -1 are
    one try.  Its Semaphore hands its lock what is left of the timeout
    (at least 0)."""
    blocking = kwargs.get("blocking", True)
    timeout = kwargs.get("timeout")
    if name == "Semaphore" and timeout is not None:
        timeout = max(timeout, 0)
    if not blocking and timeout not in (None, -1):
        return ValueError
    if timeout is not None and timeout < 0 and timeout != -1:
        return ValueError
    if not held:
        return True
    return LockTimeout if blocking else False


def _holder(name, client):
    """What keeps ``name`` from being acquired: a writer, or the only lease
    of a one-lease semaphore."""
    if name == "Semaphore":
        return KazooSemaphore(client, "/args", "holder")
    return KazooWriteLock(client, "/args", "holder")


@pytest.mark.parametrize("name", sorted(FASTZK_LOCKS))
@pytest.mark.parametrize("kwargs", ARGUMENTS, ids=str)
@pytest.mark.parametrize("held", [False, True], ids=["free", "held"])
def test_acquire_answers_as_kazoo_does(zk_hosts, zk_admin, zk_chroot, clients,
                                       name, kwargs, held):
    """Same result, or same exception type and message, as kazoo's."""
    if held:
        assert _holder(name, clients(zk_hosts, kind="kazoo")).acquire(
            timeout=5)
    ours = FASTZK_LOCKS[name](clients(zk_hosts), "/args", "me")
    theirs = KAZOO_LOCKS[name](clients(zk_hosts, kind="kazoo"), "/args", "me")
    expected = outcome(lambda: theirs.acquire(**kwargs))
    if expected is True:
        theirs.release()
    answer = kazoo_answer(name, kwargs, held)
    assert (expected if isinstance(expected, bool) else expected[0]) is answer
    got = outcome(lambda: ours.acquire(**kwargs))
    if got is True:
        assert ours.release() is True
    assert got == expected
    assert ours.is_acquired is False
    settled(ours.client)
    left = 1 if held and name != "Semaphore" else 0
    assert len(lock_nodes(zk_admin, zk_chroot + "/args")) == left
