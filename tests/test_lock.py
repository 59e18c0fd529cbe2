"""Locks (issue 3): fastzk's Lock/ReadLock/WriteLock/Semaphore against a real
ZooKeeper, with fastzk's client and with a plain kazoo client.

What is checked, and how:

- kazoo and fastzk lockers on one path exclude each other (every
  Lock/ReadLock/WriteLock pairing, both directions);
- a failed non-blocking attempt on a held lock writes nothing (the server's
  zxid does not move), where kazoo's costs two transactions;
- faults injected by a proxy at every request of acquire, cleanup and
  release (the request cut before the server sees it, or run and its reply
  lost): afterwards exactly the expected nodes exist and the lock still
  excludes a rival; kazoo's Lock leaks its node in the seed's scenario;
- threads in several sessions hammering one lock never overlap (a
  critical-section detector, not an assumption);
- bad input, the overall timeout, cancel(), contenders(), the fencing token,
  SUSPENDED and LOST.

Most tests run twice: the lock's client is fastzk's ``KazooClient`` or
kazoo's own (``lock_client`` fixture).
"""

import inspect
import random
import re
import threading
import time
import uuid

import kazoo.client
import pytest
from kazoo.exceptions import (
    CancelledError,
    ConnectionClosedError,
    LockTimeout,
    NoChildrenForEphemeralsError,
)
from kazoo.protocol.states import KazooState
from kazoo.recipe.lock import Lock as KazooLock
from kazoo.recipe.lock import ReadLock as KazooReadLock
from kazoo.recipe.lock import Semaphore as KazooSemaphore
from kazoo.recipe.lock import WriteLock as KazooWriteLock

import fastzk
from fastzk import Lock, ReadLock, Semaphore, WriteLock
from fastzk.recipes.cleanup import deleter_for
from fastzk.testing.proxy import request_opcode
from fastzk.testing.zkserver import expire_session

OP_CREATE, OP_DELETE, OP_EXISTS, OP_GET_DATA = 1, 2, 3, 4
OP_GET_CHILDREN, OP_CREATE2 = 8, 15
CREATES = (OP_CREATE, OP_CREATE2)
# kazoo's node names: <uuid4 hex>__lock__<10-digit sequence> (__rlock__ for
# readers).
NODE_RE = re.compile(r"^[0-9a-f]{32}__r?lock__\d{10}$")

KINDS = ("fastzk", "kazoo")
# How far past its timeout an acquire may return on a busy 2-core machine
# (the cleanup's confirmation may take up to 0.1 s of it); a request left
# waiting for a frozen connection would take the read timeout (seconds).
SLACK = 0.45
FASTZK_CLASSES = {"Lock": Lock, "ReadLock": ReadLock, "WriteLock": WriteLock}
KAZOO_CLASSES = {"Lock": KazooLock, "ReadLock": KazooReadLock,
                 "WriteLock": KazooWriteLock}


# -- helpers -------------------------------------------------------------------

def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("timed out waiting for %s" % what)


class Clients(object):
    """Makes started clients and stops them all after the test."""

    def __init__(self, kind):
        self.kind = kind
        self.made = []

    def __call__(self, hosts, kind=None, **kwargs):
        kind = kind or self.kind
        cls = fastzk.KazooClient if kind == "fastzk" else \
            kazoo.client.KazooClient
        kwargs.setdefault("timeout", 10.0)
        client = cls(hosts=hosts, **kwargs)
        client.start(timeout=30)
        self.made.append(client)
        return client

    def close(self):
        for client in self.made:
            try:
                client.stop()
                client.close()
            except Exception:
                pass


@pytest.fixture(params=KINDS)
def clients(request):
    """Client factory; its default kind (``clients.kind``) is the client
    the lock under test runs on: fastzk's or a plain kazoo one."""
    made = Clients(request.param)
    yield made
    made.close()


@pytest.fixture
def fz_clients():
    """Client factory making fastzk clients (rivals, helpers)."""
    made = Clients("fastzk")
    yield made
    made.close()


@pytest.fixture
def net(proxy):
    """``proxy``, healed (unfrozen, accepting) before the test's clients
    are stopped, so that a failing test does not hang in its teardown.
    Request it after the client fixtures."""
    yield proxy
    proxy.reject(False)
    proxy.unfreeze()


@pytest.fixture
def nodes(zk_admin, zk_chroot):
    """``nodes(path)``: sorted children of ``path`` in the test's chroot,
    read by a session of its own ([] when the path does not exist)."""
    def read(path):
        full = zk_chroot + path
        if zk_admin.exists(full) is None:
            return []
        return sorted(zk_admin.get_children(full))
    return read


def nth_request(opcodes, n=1):
    """A proxy predicate matching the ``n``-th request whose opcode is in
    ``opcodes`` (counted from when the predicate is installed)."""
    seen = [0]

    def predicate(body):
        if request_opcode(body) in opcodes:
            seen[0] += 1
            return seen[0] == n
        return False
    return predicate


def cut_at(proxy, mode, predicate):
    if mode == "request":
        return proxy.cut_on_request(predicate)
    return proxy.cut_on_reply_to(predicate)


def settled(client, timeout=10.0):
    """Wait until the client's guaranteed deletes are all confirmed."""
    deleter = deleter_for(client)
    wait_for(lambda: deleter.pending == [], timeout,
             "pending deletes %r" % (deleter.pending,))


def session_of(client):
    client_id = client.client_id
    return client_id[0] if client_id else None


class Exclusion(object):
    """Critical-section detector: counts holders inside the section."""

    def __init__(self):
        self._mx = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.entries = 0
        self.violations = 0

    def enter(self):
        with self._mx:
            self.inside += 1
            self.entries += 1
            if self.inside > 1:
                self.violations += 1
            self.max_inside = max(self.max_inside, self.inside)

    def leave(self):
        with self._mx:
            self.inside -= 1


# -- API ------------------------------------------------------------------------

def _parameters(function):
    """The parameters' names, kinds and defaults (kazoo has no annotations
    to compare)."""
    return [(p.name, p.kind, p.default)
            for p in inspect.signature(function).parameters.values()]


def test_exports_signatures_and_client_factories(zk_hosts, clients):
    for ours, theirs in ((Lock, KazooLock), (ReadLock, KazooReadLock),
                         (WriteLock, KazooWriteLock),
                         (Semaphore, KazooSemaphore)):
        for name in ("__init__", "acquire", "release", "cancel",
                     "contenders", "__enter__", "__exit__"):
            if hasattr(theirs, name):
                assert (_parameters(getattr(ours, name))
                        == _parameters(getattr(theirs, name))), name
    assert issubclass(Semaphore, KazooSemaphore)
    fz = clients(zk_hosts, kind="fastzk")
    assert type(fz.Lock("/l")) is Lock
    assert type(fz.ReadLock("/l")) is ReadLock
    assert type(fz.WriteLock("/l")) is WriteLock
    assert type(fz.Semaphore("/s")) is Semaphore
    # Any client works: fastzk's lock on the parametrised client.
    client = clients(zk_hosts)
    lock = Lock(client, "/l", "me")
    assert lock.acquire(timeout=5)
    assert NODE_RE.match(lock.node) and lock.node.startswith(lock.prefix)
    assert lock.contenders() == ["me"]
    assert lock.release() is True


# -- kazoo interoperability --------------------------------------------------------

def test_kazoo_and_fastzk_locks_exclude_each_other(zk_hosts, clients, nodes):
    client = clients(zk_hosts)
    kz = clients(zk_hosts, kind="kazoo")
    ours = Lock(client, "/x", "fastzk")
    theirs = KazooLock(kz, "/x", "kazoo")

    # kazoo holds: fastzk waits, then gets it when kazoo releases.
    assert theirs.acquire(timeout=5)
    assert ours.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        ours.acquire(timeout=0.3)
    got = []
    waiter = threading.Thread(target=lambda: got.append(ours.acquire(timeout=10)))
    waiter.start()
    wait_for(lambda: len(nodes("/x")) == 2, what="fastzk contender node")
    assert ours.contenders() == ["kazoo", "fastzk"]
    time.sleep(0.1)
    assert not got
    theirs.release()
    waiter.join(10)
    assert got == [True]
    assert nodes("/x") == [ours.node]
    assert all(NODE_RE.match(n) for n in nodes("/x"))

    # fastzk holds: kazoo waits, then gets it when fastzk releases.
    assert theirs.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        theirs.acquire(timeout=0.3)
    got = []
    waiter = threading.Thread(
        target=lambda: got.append(theirs.acquire(timeout=10)))
    waiter.start()
    wait_for(lambda: len(nodes("/x")) == 2, what="kazoo contender node")
    time.sleep(0.1)
    assert not got
    assert ours.release() is True
    waiter.join(10)
    assert got == [True]
    theirs.release()
    assert nodes("/x") == []


# Which node a holder leaves, and which nodes block a contender (kazoo's
# rules: a reader is blocked by writers only).
_NODE_OF = {"Lock": "__lock__", "WriteLock": "__lock__",
            "ReadLock": "__rlock__"}
_BLOCKED_BY = {"Lock": {"__lock__"}, "WriteLock": {"__lock__", "__rlock__"},
               "ReadLock": {"__lock__"}}


@pytest.mark.parametrize("holder_impl", ["kazoo", "fastzk"])
def test_read_write_mixes_exclude_like_kazoo(zk_hosts, clients, nodes,
                                            holder_impl):
    client = clients(zk_hosts)
    kz = clients(zk_hosts, kind="kazoo")
    holder_client = kz if holder_impl == "kazoo" else \
        clients(zk_hosts, kind="fastzk")
    holder_classes = KAZOO_CLASSES if holder_impl == "kazoo" else \
        FASTZK_CLASSES
    for holder_name in ("Lock", "ReadLock", "WriteLock"):
        path = "/rw-" + holder_name
        holder = holder_classes[holder_name](holder_client, path, "holder")
        assert holder.acquire(timeout=5)
        for name in ("Lock", "ReadLock", "WriteLock"):
            expected = _NODE_OF[holder_name] not in _BLOCKED_BY[name]
            ours = FASTZK_CLASSES[name](client, path, "fastzk")
            theirs = KAZOO_CLASSES[name](kz, path, "kazoo")
            for contender in (ours, theirs):
                got = contender.acquire(blocking=False)
                assert got is expected, (holder_name, name, contender)
                if got:
                    # Both contenders hold it (shared): our node is there.
                    assert contender.node in nodes(path)
                    contender.release()
                assert nodes(path) == [holder.node], (holder_name, name)
        holder.release()
        assert nodes(path) == []


def test_extra_lock_patterns_cross_implementation(zk_hosts, clients, nodes,
                                                  zk_admin, zk_chroot):
    client = clients(zk_hosts)
    # A go-zk style lock node held by "another implementation".
    zk_admin.create(zk_chroot + "/xl/_c_%s-lock-" % uuid.uuid4().hex, b"go",
                    sequence=True, makepath=True)
    assert Lock(client, "/xl", extra_lock_patterns=("-lock-",)).acquire(
        blocking=False) is False
    plain = Lock(client, "/xl")
    assert plain.acquire(blocking=False) is True
    plain.release()
    assert len(nodes("/xl")) == 1


# -- failed attempts are free ---------------------------------------------------------

def _attempts(locks, n):
    failures = 0
    start = time.perf_counter()
    for i in range(n):
        if not locks(i).acquire(blocking=False):
            failures += 1
    return failures, time.perf_counter() - start


def test_failed_nonblocking_attempts_write_nothing(zk_server, zk_hosts, clients,
                                                   nodes):
    client = clients(zk_hosts)
    holder_client = clients(zk_hosts, kind="kazoo")
    kz = clients(zk_hosts, kind="kazoo")
    holder = KazooLock(holder_client, "/busy", "holder")
    assert holder.acquire(timeout=5)
    writer = KazooWriteLock(holder_client, "/rw", "writer")
    assert writer.acquire(timeout=5)
    same = Lock(client, "/busy")
    reader = ReadLock(client, "/rw")
    n = 300
    # Another process's session may end meanwhile (a transaction): take the
    # best of three windows; a fastzk write per attempt would show in each.
    deltas = []
    for _ in range(3):
        before = zk_server.zxid()
        failed_new, _ = _attempts(lambda i: Lock(client, "/busy", "w%d" % i), n)
        failed_same, elapsed = _attempts(lambda i: same, n)
        failed_reader, _ = _attempts(lambda i: reader, n // 3)
        deltas.append(zk_server.zxid() - before)
        assert (failed_new, failed_same, failed_reader) == (n, n, n // 3)
        if deltas[-1] == 0:
            break
    assert min(deltas) == 0, deltas
    fast_rate = n / elapsed
    assert nodes("/busy") == [holder.node]

    # kazoo's own Lock: a create and a delete per failed attempt.
    m = 40
    before = zk_server.zxid()
    failed, kz_elapsed = _attempts(lambda i: KazooLock(kz, "/busy"), m)
    kazoo_delta = zk_server.zxid() - before
    assert failed == m
    assert kazoo_delta >= 2 * m
    print("\nfailed non-blocking attempts: fastzk lock on %s client %.0f/s, "
          "0 transactions; kazoo lock %.0f/s, %.2f transactions each"
          % (clients.kind, fast_rate, m / kz_elapsed, kazoo_delta / m))


class _Traffic(object):
    """Records the opcodes a fastzk client's engine sends, and those of the
    requests whose replies a caller waited for."""

    def __init__(self, client):
        self.sent = []
        self.awaited = []
        engine = client._connection
        submit, call = engine.submit, engine.call

        def counting_submit(req, *args, **kwargs):
            self.sent.append(req.opcode)
            return submit(req, *args, **kwargs)

        def counting_call(req):
            self.awaited.append(req.opcode)
            return call(req)

        # Asynchronous calls reach the channel through engine.submit,
        # synchronous ones through the channel's own submit.
        engine.submit = engine.channel.submit = counting_submit
        engine.call = counting_call


@pytest.mark.parametrize("blocking", [True, False])
def test_a_free_lock_is_won_in_one_round_trip_after_any_check(zk, nodes,
                                                             blocking):
    zk.ensure_path("/one-trip")
    traffic = _Traffic(zk)
    lock = Lock(zk, "/one-trip", "me")
    assert lock.acquire(blocking=blocking, timeout=10 if blocking else None)
    # The create and the listing that decides the lock go out together:
    # one wait, for the listing (the create's reply comes before it).
    check = [] if blocking else [OP_GET_CHILDREN]
    assert traffic.sent == check + [OP_CREATE2, OP_GET_CHILDREN]
    assert traffic.awaited == check + [OP_GET_CHILDREN]
    assert nodes("/one-trip") == [lock.node]
    # A rival's attempt, decided the same way, finds it held.
    rival = Lock(zk, "/one-trip", "rival")
    assert rival.acquire(blocking=False) is False
    lock.release()
    assert nodes("/one-trip") == []


def test_a_lock_on_a_missing_path_creates_the_path(zk, nodes):
    traffic = _Traffic(zk)
    lock = Lock(zk, "/not/there/yet", "me")
    assert lock.acquire(timeout=10)
    assert OP_CREATE2 in traffic.sent
    assert nodes("/not/there/yet") == [lock.node]
    lock.release()


# -- faults at every step -----------------------------------------------------------------

# (scenario, opcodes of the request to hit, which one of them)
FAULT_STEPS = [
    ("acquire", CREATES, 1),
    ("acquire", (OP_GET_CHILDREN,), 1),
    ("acquire_nb", (OP_GET_CHILDREN,), 1),  # the look before creating
    ("acquire_nb", CREATES, 1),
    ("acquire_nb", (OP_GET_CHILDREN,), 2),  # the look after creating
    ("held_nb", (OP_GET_CHILDREN,), 1),  # a held lock: only a look
    ("wait", CREATES, 1),
    ("wait", (OP_GET_CHILDREN,), 1),
    ("wait", (OP_EXISTS, OP_GET_DATA), 1),  # watching the predecessor
    ("timeout", (OP_DELETE,), 1),  # the cleanup of a timed-out attempt
    ("race", (OP_DELETE,), 1),  # the cleanup of a lost non-blocking race
    ("race", CREATES, 1),
    ("release", (OP_DELETE,), 1),
]


def _step_id(step):
    scenario, opcodes, n = step
    names = {OP_CREATE: "create", OP_DELETE: "delete", OP_EXISTS: "exists",
             OP_GET_DATA: "get", OP_GET_CHILDREN: "children",
             OP_CREATE2: "create"}
    return "%s-%s%d" % (scenario, names[opcodes[0]], n)


@pytest.mark.parametrize("mode", ["request", "reply"])
@pytest.mark.parametrize("step", FAULT_STEPS, ids=_step_id)
def test_fault_at_every_step(zk_hosts, zk_proxy_hosts, proxy, clients,
                             fz_clients, nodes, step, mode):
    """Cut the connection at one request of the lock protocol: before the
    server sees it ("request") or after it ran, losing its reply ("reply").
    The session survives; afterwards exactly the expected nodes exist and
    the lock still excludes a rival."""
    scenario, opcodes, n = step
    client = clients(zk_proxy_hosts)
    rival_client = fz_clients(zk_hosts)
    session = session_of(client)
    path = "/f"
    # The lock path exists, so every attempt makes the same requests.
    rival_client.ensure_path(path)
    lock = Lock(client, path, "ours")
    rival = Lock(rival_client, path, "rival")

    if scenario == "release":
        assert lock.acquire(timeout=5)
    if scenario in ("wait", "timeout", "held_nb"):
        assert rival.acquire(timeout=5)

    raced = []
    if scenario == "race":
        # The lock looks free when we look; at our create a rival takes it
        # (the proxy holds our create while the rival, on a direct
        # connection, acquires), so our create runs after the rival's.
        def tap(body):
            if request_opcode(body) in CREATES and not raced:
                raced.append(rival.acquire(blocking=False))
            return False
        tap_hook = proxy.cut_on_request(tap)

    hook = cut_at(proxy, mode, nth_request(opcodes, n))
    result = []
    if scenario == "acquire":
        result.append(lock.acquire(timeout=10))
    elif scenario in ("acquire_nb", "held_nb"):
        result.append(lock.acquire(blocking=False))
    elif scenario == "wait":
        waiter = threading.Thread(
            target=lambda: result.append(lock.acquire(timeout=15)))
        waiter.start()
        assert hook.wait(10), "the fault was not injected"
        wait_for(lambda: client.connected, what="reconnection")
        wait_for(lambda: len(nodes(path)) == 2, what="our contender node")
        assert Lock(rival_client, path).acquire(blocking=False) is False
        assert rival.release() is True
        waiter.join(15)
    elif scenario == "timeout":
        with pytest.raises(LockTimeout):
            lock.acquire(timeout=1.0)
        result.append(False)
    elif scenario == "race":
        result.append(lock.acquire(blocking=False))
        tap_hook.cancel()
        assert raced == [True]
    elif scenario == "release":
        result.append(lock.release())

    assert hook.wait(10), "the fault was not injected"
    wait_for(lambda: client.connected, what="reconnection")
    assert session_of(client) == session, "the session must survive"
    settled(client)

    if scenario in ("acquire", "acquire_nb", "wait"):
        assert result == [True]
        assert lock.is_acquired and lock.held
        # Exactly one node: ours, and no duplicate from a lost create.
        assert nodes(path) == [lock.node]
        assert rival.acquire(blocking=False) is False
        assert lock.release() is True
        assert nodes(path) == []
        assert rival.acquire(blocking=False) is True
        rival.release()
    elif scenario in ("timeout", "race", "held_nb"):
        assert result == [False]
        assert not lock.is_acquired
        # Nothing of ours left: only the holder's node.
        wait_for(lambda: nodes(path) == [rival.node],
                 what="only the rival's node")
        rival.release()
        assert lock.acquire(blocking=False) is True
        lock.release()
    else:  # release
        assert result == [True]
        wait_for(lambda: nodes(path) == [], what="the released node gone")
        assert rival.acquire(blocking=False) is True
        rival.release()
    assert nodes(path) == []


def test_delete_pending_across_several_reconnects(zk_hosts, zk_proxy_hosts,
                                                  proxy, clients, fz_clients,
                                                  nodes):
    """The release's delete is cut, then its first retry runs but loses its
    reply: it stays pending over both reconnects and ends confirmed."""
    client = clients(zk_proxy_hosts)
    session = session_of(client)
    lock = Lock(client, "/again", "ours")
    rival = Lock(fz_clients(zk_hosts), "/again", "rival")
    assert lock.acquire(timeout=5)
    first = proxy.cut_on_request(nth_request((OP_DELETE,)))
    # Offered only the frames the first hook let through: the retry's.
    second = proxy.cut_on_reply_to(nth_request((OP_DELETE,)))
    assert lock.release() is True
    assert first.wait(10) and second.wait(10)
    wait_for(lambda: client.connected, what="reconnection")
    settled(client)
    assert session_of(client) == session
    assert proxy.connections_cut >= 2
    assert nodes("/again") == []
    assert rival.acquire(blocking=False) is True
    rival.release()


def test_seed_scenario_kazoo_leaks_fastzk_does_not(zk_hosts, zk_proxy_hosts,
                                                    proxy, fz_clients, nodes):
    """kazoo #732: a failed attempt whose cleanup delete meets a connection
    loss.  kazoo's Lock leaves its node for the rest of the session; fastzk's
    leaves nothing (and its non-blocking attempt sends no delete at all)."""
    holder = Lock(fz_clients(zk_hosts), "/seed", "holder")
    assert holder.acquire(timeout=5)
    clients = Clients("kazoo")
    try:
        kz = clients(zk_proxy_hosts)
        session = session_of(kz)

        # kazoo, non-blocking attempt: create, look, delete -> cut.
        hook = proxy.cut_on_request(nth_request((OP_DELETE,)))
        assert KazooLock(kz, "/seed").acquire(blocking=False) is False
        assert hook.wait(10)
        wait_for(lambda: kz.connected, what="kazoo reconnection")
        # kazoo timed-out attempt: the same.
        hook = proxy.cut_on_request(nth_request((OP_DELETE,)))
        with pytest.raises(LockTimeout):
            KazooLock(kz, "/seed").acquire(timeout=0.5)
        assert hook.wait(10)
        wait_for(lambda: kz.connected, what="kazoo reconnection")
        time.sleep(0.3)
        assert session_of(kz) == session
        leaked = [n for n in nodes("/seed") if n != holder.node]
        assert len(leaked) == 2, "kazoo's Lock leaks its node (#732)"
        kz.stop()

        # fastzk's lock on the same (kazoo) kind of client, same faults.
        kz = clients(zk_proxy_hosts)
        session = session_of(kz)
        hook = proxy.cut_on_request(nth_request((OP_DELETE,)))
        assert Lock(kz, "/seed").acquire(blocking=False) is False
        assert not hook.fired.is_set()  # nothing to delete: nothing written
        with pytest.raises(LockTimeout):
            Lock(kz, "/seed").acquire(timeout=0.5)
        assert hook.wait(10)
        wait_for(lambda: kz.connected, what="reconnection")
        settled(kz)
        assert session_of(kz) == session
        wait_for(lambda: nodes("/seed") == [holder.node], what="no leak")
    finally:
        clients.close()


def test_lost_create_cleanup_pending_does_not_delete_a_later_node(
        zk_hosts, zk_proxy_hosts, clients, fz_clients, net, nodes):
    """A timed attempt gives up while its create's reply is lost and the
    connection is down: the cleanup (find the node by its prefix) is
    pending.  The next attempt of the same lock must not carry that prefix,
    or the pending cleanup would delete the node of a lock now held."""
    client = clients(zk_proxy_hosts, timeout=10.0)
    rival = Lock(fz_clients(zk_hosts), "/p", "rival")
    assert rival.acquire(timeout=5)
    session = session_of(client)
    lock = Lock(client, "/p", "ours")
    first_prefix = lock.prefix
    net.reject(True)
    hook = net.cut_on_reply_to(nth_request(CREATES))
    started = time.monotonic()
    assert lock.acquire(timeout=0.8) is False
    elapsed = time.monotonic() - started
    assert hook.wait(5)
    assert elapsed < 0.8 + SLACK, elapsed
    deleter = deleter_for(client)
    assert (lock.path, first_prefix) in deleter.pending
    assert lock.prefix != first_prefix
    # Our lost node is still on the server, the cleanup waits for the
    # connection.
    assert len(nodes("/p")) == 2
    net.reject(False)
    rival.release()
    wait_for(lambda: client.connected, what="reconnection")
    assert lock.acquire(timeout=5)
    settled(client)
    assert session_of(client) == session
    assert nodes("/p") == [lock.node] and lock.held
    lock.release()
    assert nodes("/p") == []


# -- many threads, several sessions ------------------------------------------------------

def test_hammer_mutual_exclusion(zk_hosts, zk_proxy_hosts, proxy, clients,
                                 nodes):
    """Threads in five sessions (fastzk and kazoo clients, fastzk and kazoo
    locks, one session through a proxy that keeps cutting) contend for one
    lock, blocking and not; nobody ever enters the section while another is
    in it."""
    detector = Exclusion()
    sessions = [
        (clients(zk_hosts), Lock),
        (clients(zk_hosts, kind="fastzk"), Lock),
        (clients(zk_hosts, kind="kazoo"), Lock),
        (clients(zk_hosts, kind="kazoo"), KazooLock),
        (clients(zk_proxy_hosts), Lock),
    ]
    stop = threading.Event()
    errors = []
    acquired = {}

    def work(index, client, cls, thread_no):
        rng = random.Random(index * 10 + thread_no)
        count = 0
        try:
            while not stop.is_set():
                lock = cls(client, "/hammer", "s%d" % index)
                if rng.random() < 0.5:
                    try:
                        got = lock.acquire(timeout=2.0)
                    except LockTimeout:
                        got = False
                else:
                    got = lock.acquire(blocking=False)
                if not got:
                    continue
                detector.enter()
                time.sleep(rng.random() * 0.003)
                detector.leave()
                count += 1
                lock.release()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((index, repr(exc)))
        acquired[(index, thread_no)] = count

    threads = [threading.Thread(target=work, args=(i, c, cls, t))
               for i, (c, cls) in enumerate(sessions) for t in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        time.sleep(0.4)
        proxy.cut()
    stop.set()
    for thread in threads:
        thread.join(20)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert detector.violations == 0 and detector.max_inside == 1
    assert detector.entries >= 20, detector.entries
    assert sum(acquired.values()) == detector.entries
    for client, _ in sessions:
        settled(client)
    wait_for(lambda: nodes("/hammer") == [], what="no node left behind")


def test_the_work_queue_loop_under_rapid_cuts_never_hangs_or_leaks(
        zk_proxy_hosts, proxy, clients, nodes):
    """The fleet benchmark's loop (kazoo #732) in miniature, on one session
    whose connection is cut every 20-150 ms, sometimes exactly as a delete
    goes out: every call returns (an error is fine, a hang is not), no two
    threads ever hold one item, and no contender node outlives the cuts."""
    client = clients(zk_proxy_hosts)
    items = ["item-%d" % i for i in range(6)]
    for item in items:
        client.ensure_path("/queue/items/" + item)
    detectors = {item: Exclusion() for item in items}
    stop = threading.Event()
    returned = []

    def work(thread_no):
        rng = random.Random(thread_no)
        calls = 0
        while not stop.is_set():
            try:
                names = client.get_children("/queue/items")
                rng.shuffle(names)
                for name in names:
                    lock = Lock(client, "/queue/locks/" + name, "t%d" % thread_no)
                    calls += 1
                    if not lock.acquire(blocking=False):
                        continue
                    try:
                        detectors[name].enter()
                        try:
                            client.set("/queue/items/" + name, b"%d" % calls)
                        finally:
                            detectors[name].leave()
                    finally:
                        lock.release()
            except Exception:  # noqa: BLE001 - connection errors expected
                time.sleep(0.01)
        returned.append(calls)

    threads = [threading.Thread(target=work, args=(n,), daemon=True)
               for n in range(8)]
    for thread in threads:
        thread.start()
    rng = random.Random(7)
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.02, 0.15))
        if rng.random() < 0.3:
            proxy.cut_on_request(lambda body: request_opcode(body) == OP_DELETE)
        else:
            proxy.cut()
    proxy.clear_hooks()
    stop.set()
    for thread in threads:
        thread.join(30)
    stuck = [t.name for t in threads if t.is_alive()]
    assert stuck == [], "threads still inside a call: %s" % stuck
    assert len(returned) == 8 and sum(returned) > 50, returned
    assert all(d.violations == 0 for d in detectors.values())
    settled(client, 30)
    for item in items:
        assert nodes("/queue/locks/" + item) == [], item


def test_hammer_read_write(zk_hosts, clients):
    """Readers share, writers exclude everyone: checked with counters."""
    mx = threading.Lock()
    state = {"readers": 0, "writers": 0, "max_readers": 0, "bad": 0,
             "entries": 0}
    sessions = [clients(zk_hosts), clients(zk_hosts, kind="kazoo"),
                clients(zk_hosts, kind="fastzk")]
    stop = threading.Event()
    errors = []

    def work(client, writer, impl):
        classes = KAZOO_CLASSES if impl == "kazoo" else FASTZK_CLASSES
        cls = classes["WriteLock" if writer else "ReadLock"]
        try:
            while not stop.is_set():
                lock = cls(client, "/rw-hammer")
                try:
                    if not lock.acquire(timeout=2.0):
                        continue
                except LockTimeout:
                    continue
                with mx:
                    state["entries"] += 1
                    if writer:
                        state["writers"] += 1
                        if state["writers"] > 1 or state["readers"]:
                            state["bad"] += 1
                    else:
                        state["readers"] += 1
                        if state["writers"]:
                            state["bad"] += 1
                        state["max_readers"] = max(state["max_readers"],
                                                   state["readers"])
                time.sleep(0.004)
                with mx:
                    state["writers" if writer else "readers"] -= 1
                lock.release()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = []
    for i, client in enumerate(sessions):
        for writer in (False, True, False):
            impl = "kazoo" if (i == 1 and writer) else "fastzk"
            threads.append(threading.Thread(target=work,
                                            args=(client, writer, impl)))
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert state["bad"] == 0
    assert state["entries"] >= 20
    assert state["max_readers"] >= 2  # readers did share


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/a/./b",
                                  "/a/../b", "/a/.", "/a/..", "/a\x00b",
                                  "/a\x01", "/a\x7f", "/a\ud800",
                                  "/a\ue000", "/a\ufff0"])
def test_invalid_path_is_refused(zk_hosts, clients, path):
    client = clients(zk_hosts)
    for cls in (Lock, ReadLock, WriteLock):
        with pytest.raises(ValueError):
            cls(client, path)


@pytest.mark.parametrize("path", ["/a/.b", "/a/..b", "/a/...", "/a.b/c.",
                                  "/\u00e9t\u00e9"])
def test_paths_zookeeper_accepts_are_accepted(zk_hosts, clients, nodes,
                                               path):
    lock = Lock(clients(zk_hosts), path, "me")
    assert lock.acquire(timeout=10)
    assert nodes(path) == [lock.node]
    lock.release()


def test_parent_is_ephemeral(zk_hosts, clients, nodes):
    client = clients(zk_hosts)
    client.create("/eph", b"", ephemeral=True)
    for path in ("/eph", "/eph/lock"):
        for blocking in (True, False):
            lock = Lock(client, path)
            with pytest.raises(NoChildrenForEphemeralsError):
                lock.acquire(blocking=blocking,
                             timeout=5 if blocking else None)
            assert not lock.is_acquired
    assert deleter_for(client).pending == []
    assert nodes("/eph") == []
    assert nodes("/") == ["eph"]


def test_release_not_held_returns_false(zk_hosts, clients):
    client = clients(zk_hosts)
    lock = Lock(client, "/r")
    assert lock.release() is False
    assert lock.acquire(timeout=5)
    assert lock.release() is True
    assert lock.release() is False
    # kazoo's answer is the same.
    assert KazooLock(client, "/r").release() is False


def test_acquire_from_stopped_client(zk_hosts, clients, nodes):
    client = clients(zk_hosts)
    lock = Lock(client, "/stopped")
    client.stop()
    for kwargs in ({"blocking": False}, {"timeout": 2}, {}):
        with pytest.raises(ConnectionClosedError):
            lock.acquire(**kwargs)
        assert not lock.is_acquired
    assert nodes("/") == []
    assert deleter_for(client).pending == []


# -- timeouts and cancel -------------------------------------------------------------------

def test_timeout_is_an_overall_deadline(zk_hosts, clients, fz_clients, nodes):
    """The predecessor keeps changing (each one leaves, the next one is
    still there): the wait restarts, the deadline does not.  kazoo's Lock
    waits its whole timeout again after each wake-up and overruns."""
    client = clients(zk_hosts)
    ghosts = fz_clients(zk_hosts)

    def churn():
        names = [ghosts.create("/t/%s__lock__" % uuid.uuid4().hex,
                               ephemeral=True, sequence=True, makepath=True)
                 for _ in range(4)]

        def leave():
            for name in reversed(names):
                time.sleep(0.35)
                ghosts.delete(name)
        return threading.Thread(target=leave)

    leaver = churn()
    lock = Lock(client, "/t")
    leaver.start()
    started = time.monotonic()
    with pytest.raises(LockTimeout):
        lock.acquire(timeout=1.0)
    elapsed = time.monotonic() - started
    leaver.join()
    assert 1.0 <= elapsed < 1.0 + SLACK, elapsed
    assert nodes("/t") == []

    leaver = churn()
    theirs = KazooLock(client, "/t")
    leaver.start()
    started = time.monotonic()
    try:
        got = theirs.acquire(timeout=1.0)
    except LockTimeout:
        got = False
    elapsed = time.monotonic() - started
    leaver.join()
    assert elapsed > 1.3, "kazoo's Lock overran its timeout: %s" % elapsed
    if got:
        theirs.release()


def test_timeout_while_the_connection_is_frozen(zk_hosts, zk_proxy_hosts,
                                                clients, fz_clients, net,
                                                nodes):
    """A frozen network (no reply, no error) does not stretch the timeout;
    the attempt's node is removed once the network is back."""
    client = clients(zk_proxy_hosts, timeout=6.0)
    session = session_of(client)
    rival = Lock(fz_clients(zk_hosts), "/fr", "rival")
    assert rival.acquire(timeout=5)
    lock = Lock(client, "/fr", "ours")
    # Frozen before anything is sent, and frozen while waiting.
    for freeze_after in (0.0, 0.3):
        if freeze_after:
            timer = threading.Timer(freeze_after, net.freeze)
        else:
            net.freeze()
            timer = threading.Thread(target=lambda: None)
        timer.start()
        started = time.monotonic()
        try:
            got = lock.acquire(timeout=1.0)
        except LockTimeout:
            got = False
        elapsed = time.monotonic() - started
        timer.join()
        assert got is False
        assert elapsed < 1.0 + SLACK, elapsed
        net.unfreeze()
        settled(client)
        wait_for(lambda: nodes("/fr") == [rival.node], what="no leftover")
    assert session_of(client) == session
    # Non-blocking with a timeout: refused as kazoo refuses it.
    with pytest.raises(ValueError):
        lock.acquire(blocking=False, timeout=0.5)
    rival.release()
    assert lock.acquire(timeout=5)
    assert nodes("/fr") == [lock.node]
    lock.release()


def test_cancel_interrupts_a_waiting_acquire(zk_hosts, clients, fz_clients,
                                             nodes):
    client = clients(zk_hosts)
    rival = Lock(fz_clients(zk_hosts), "/c", "rival")
    assert rival.acquire(timeout=5)
    lock = Lock(client, "/c", "ours")
    outcome = []

    def waiting():
        try:
            outcome.append(lock.acquire())
        except CancelledError:
            outcome.append("cancelled")
    thread = threading.Thread(target=waiting)
    thread.start()
    wait_for(lambda: len(nodes("/c")) == 2, what="our contender node")
    started = time.monotonic()
    lock.cancel()
    thread.join(5)
    assert outcome == ["cancelled"]
    assert time.monotonic() - started < 1.0
    assert nodes("/c") == [rival.node]
    rival.release()
    # The cancel is spent: the lock works again.
    assert lock.acquire(timeout=5)
    lock.release()


# -- contenders, fencing token -----------------------------------------------------------------

def test_contenders_order(zk_hosts, clients, fz_clients, nodes):
    client = clients(zk_hosts)
    other = fz_clients(zk_hosts)
    holder = Lock(client, "/o", "holder")
    assert holder.acquire(timeout=5)
    waiters = []
    for name, cls, owner in (("w1", Lock, other), ("r2", ReadLock, client),
                             ("w3", WriteLock, other)):
        lock = cls(owner, "/o", name)
        thread = threading.Thread(target=lock.acquire, kwargs={"timeout": 10})
        thread.start()
        waiters.append((lock, thread))
        wait_for(lambda n=len(waiters) + 1: len(nodes("/o")) == n,
                 what="contender %s" % name)
    everyone = ["holder", "w1", "r2", "w3"]
    # As kazoo's: a Lock lists the nodes of its own kind, a shared lock
    # lists readers and writers.
    assert holder.contenders() == ["holder", "w1", "w3"]
    assert WriteLock(client, "/o").contenders() == everyone
    assert ReadLock(client, "/o").contenders() == everyone
    assert KazooLock(client, "/o").contenders() == holder.contenders()
    assert KazooReadLock(client, "/o").contenders() == everyone
    holder.release()
    for lock, thread in waiters:
        thread.join(10)
        # They get it in order; each releases for the next.
        assert lock.is_acquired
        lock.release()
    assert nodes("/o") == []


def test_sequence_numbers_compare_as_integers(zk_hosts, clients, zk_admin,
                                              zk_chroot):
    """kazoo #730: sequence numbers wrap into negative numbers; compared as
    strings "-2147483647" sorts before "-2147483648"."""
    client = clients(zk_hosts)
    base = zk_chroot + "/int"
    for name, seq in (("a", "-2147483647"), ("b", "-2147483648"),
                      ("c", "0000000007")):
        zk_admin.create("%s/%s__lock__%s" % (base, uuid.uuid4().hex, seq),
                        name.encode(), makepath=True)
    lock = Lock(client, "/int")
    assert lock.contenders() == ["b", "a", "c"]
    # kazoo's string order puts "a" first.
    assert KazooLock(client, "/int").contenders() == ["a", "b", "c"]
    own = "%s0000000005" % lock.prefix
    zk_admin.create("%s/%s" % (base, own), b"", ephemeral=False)
    predecessor = lock._get_predecessor(own)
    assert predecessor.endswith("__lock__-2147483647")
    assert KazooLock._get_predecessor(lock, own).endswith(
        "__lock__-2147483648")
    assert lock.acquire(blocking=False) is False


def test_fencing_token_grows_between_holders(zk_hosts, clients, fz_clients,
                                             zk_admin, zk_chroot):
    a = Lock(clients(zk_hosts), "/fence", "a")
    b = Lock(fz_clients(zk_hosts), "/fence", "b")
    assert a.fencing_token is None
    tokens = []
    for lock in (a, b, a, b, a):
        assert lock.acquire(timeout=5)
        token = lock.fencing_token
        stat = zk_admin.exists("%s/fence/%s" % (zk_chroot, lock.node))
        assert token == stat.czxid
        tokens.append(token)
        lock.release()
        assert lock.fencing_token is None
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    # A waiter that gets the lock after the holder has a larger token too.
    assert a.acquire(timeout=5)
    held_token = a.fencing_token
    result = []
    waiter = threading.Thread(target=lambda: result.append(b.acquire(timeout=5)))
    waiter.start()
    wait_for(lambda: len(zk_admin.get_children(zk_chroot + "/fence")) == 2,
             what="waiter node")
    a.release()
    waiter.join(5)
    assert result == [True] and b.fencing_token > held_token
    b.release()


# -- session safety ----------------------------------------------------------------------------

def test_lost_session_fires_callback(zk_server, zk_hosts, clients, fz_clients,
                                     nodes):
    client = clients(zk_hosts, timeout=4.0)
    rival = Lock(fz_clients(zk_hosts), "/lost", "rival")
    lock = Lock(client, "/lost", "ours")
    calls = []
    lock.on_lost(calls.append)
    assert lock.acquire(timeout=5)
    assert lock.held and not lock.lost.is_set()
    states = []
    client.add_listener(states.append)
    assert expire_session(zk_server.address, *client.client_id)
    assert lock.lost.wait(10)
    assert calls == [lock]
    assert lock.is_acquired is False and lock.held is False
    assert lock.fencing_token is None
    assert KazooState.LOST in states
    assert lock.release() is False
    # The server removed our node with the session: the rival gets it.
    assert rival.acquire(timeout=5)
    assert nodes("/lost") == [rival.node]
    rival.release()
    wait_for(lambda: client.connected, what="new session")
    assert lock.acquire(timeout=5)
    assert not lock.lost.is_set() and lock.held
    lock.release()
    assert calls == [lock]


def test_suspended_lock_is_not_held(zk_hosts, zk_proxy_hosts, clients,
                                    fz_clients, net, nodes):
    client = clients(zk_proxy_hosts, timeout=10.0)
    session = session_of(client)
    lock = Lock(client, "/susp", "ours")
    rival = Lock(fz_clients(zk_hosts), "/susp", "rival")
    assert lock.acquire(timeout=5)
    token = lock.fencing_token
    net.reject(True)
    net.cut()
    wait_for(lambda: not lock.held, what="held False while SUSPENDED")
    assert lock.is_acquired and not lock.lost.is_set()
    # Still ours on the server: the session lives.
    assert rival.acquire(blocking=False) is False
    net.reject(False)
    wait_for(lambda: lock.held, what="held again once CONNECTED")
    assert lock.fencing_token == token
    assert rival.acquire(blocking=False) is False
    # Released while disconnected: the delete completes on reconnection.
    net.reject(True)
    net.cut()
    wait_for(lambda: not client.connected, what="disconnection")
    started = time.monotonic()
    assert lock.release() is True
    # It does not wait for the connection to come back.
    assert time.monotonic() - started < 0.5
    assert not lock.is_acquired and not lock.held
    assert nodes("/susp") != []
    net.reject(False)
    settled(client)
    assert nodes("/susp") == []
    assert session_of(client) == session
    assert rival.acquire(blocking=False) is True
    rival.release()


# -- semaphore -----------------------------------------------------------------------------------

def test_semaphore(zk_hosts, clients):
    client = clients(zk_hosts)
    first = Semaphore(client, "/sem", "a", max_leases=2)
    second = client.Semaphore("/sem", "b", max_leases=2)
    third = KazooSemaphore(clients(zk_hosts, kind="kazoo"), "/sem", "c",
                           max_leases=2)
    assert first.acquire(timeout=5) and second.acquire(timeout=5)
    assert third.acquire(blocking=False) is False
    assert sorted(first.lease_holders()) == ["a", "b"]
    first.release()
    assert third.acquire(timeout=5)
    second.release()
    third.release()
