"""The ``fastzk`` command line, run as a subprocess against a real server.

Every command is run as ``python -m fastzk`` from the fastzk that this test
process imports (the source tree or an installed package alike), and
checked with kazoo's own client.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import types
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock as KazooLock
from kazoo.recipe.lock import ReadLock as KazooReadLock

import fastzk
from fastzk import cli
from fastzk.testing.zkserver import free_port

FASTZK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    fastzk.__file__)))


def _env():
    env = dict(os.environ)
    env.pop("ZOOKEEPER_HOSTS", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (FASTZK_ROOT, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def fastzk_cmd(*args):
    return [sys.executable, "-m", "fastzk"] + list(args)


def run(*args, timeout=60):
    return subprocess.run(fastzk_cmd(*args), env=_env(), timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


# Starts fastzk with SIGINT and SIGTERM at their defaults: fastzk (like a
# shell) leaves alone a signal it inherits as ignored, and a test run from a
# script in the background inherits SIGINT ignored.
_DEFAULT_SIGNALS_THEN_EXEC = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "os.execv(sys.executable, sys.argv[1:])"
)


def start(*args, stdout=subprocess.PIPE):
    argv = [sys.executable, "-c", _DEFAULT_SIGNALS_THEN_EXEC] + fastzk_cmd(
        *args)
    return subprocess.Popen(argv, env=_env(), stdout=stdout,
                            stderr=subprocess.PIPE, universal_newlines=True)


def assert_one_line_error(stderr, *fragments):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, "expected one line on stderr, got %r" % stderr
    assert lines[0].startswith("fastzk: "), lines[0]
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


class LineReader(object):
    """Reads a process's pipe on a thread; lines can be awaited."""

    def __init__(self, pipe):
        self.lines = []
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(pipe,),
                                        daemon=True)
        self._thread.start()

    def _run(self, pipe):
        for line in pipe:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern, timeout=20.0):
        """Return the first unread line matching ``pattern`` (regex)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(0.01, left))
            except queue.Empty:
                line = None
                eof = False
            else:
                eof = line is None
            if line is not None:
                self.lines.append(line)
                if re.search(pattern, line):
                    return line
                continue
            if eof or time.monotonic() >= deadline:
                raise AssertionError("no line matching %r within %.0f s; "
                                     "got %r" % (pattern, timeout, self.lines))


def kazoo(hosts, **kwargs):
    client = KazooClient(hosts=hosts, **kwargs)
    client.start(timeout=30)
    return client


def stop(client):
    client.stop()
    client.close()


def wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %.0f s"
                                 % (what, timeout))
        time.sleep(0.05)


def contenders(client, path):
    try:
        return sorted(c for c in client.get_children(path)
                      if "__lock__" in c or "__rlock__" in c)
    except Exception:
        return []


# ---------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------

def test_help_version_and_usage_errors():
    result = run("--help")
    assert result.returncode == 0
    for command in ("bench", "lock", "watch", "locks"):
        assert command in result.stdout
    result = run("locks", "--help")
    assert result.returncode == 0
    # The abandoned-node heuristic is documented where it is used.
    assert "wchp" in result.stdout and "cons" in result.stdout
    assert "four-letter words disabled" in result.stdout
    result = run("--version")
    assert result.returncode == 0 and fastzk.__version__ in result.stdout

    result = run("lock", "/x")  # no command
    assert result.returncode == cli.EXIT_USAGE
    assert_one_line_error(result.stderr, "COMMAND")
    result = run("--hosts", "127.0.0.1:1", "lock", "relative", "--", "true")
    assert result.returncode == cli.EXIT_USAGE
    assert_one_line_error(result.stderr, "must start with /")


def test_parse_args_puts_options_anywhere_before_the_command():
    args = cli.parse_args(["lock", "/p", "--timeout", "3", "--shared", "--",
                           "echo", "--timeout", "-n"])
    assert (args.path, args.lock_timeout, args.shared) == ("/p", 3.0, True)
    assert args.command == ["echo", "--timeout", "-n"]
    args = cli.parse_args(["--hosts", "h:1", "--timeout", "4", "lock",
                           "--identifier", "me", "/p", "sleep", "1"])
    assert (args.hosts, args.connect_timeout, args.identifier) == (
        "h:1", 4.0, "me")
    assert args.lock_timeout is None and args.command == ["sleep", "1"]
    # Without options after PATH, a "--" inside the command is its own.
    args = cli.parse_args(["lock", "/p", "sh", "-c", "x", "--", "y"])
    assert args.command == ["sh", "-c", "x", "--", "y"]


# ---------------------------------------------------------------------------
# fastzk bench (delegation only: the benchmarks are tested elsewhere)
# ---------------------------------------------------------------------------

@pytest.fixture
def quiet_main(monkeypatch):
    """cli.main() in this process, without its logging/warnings set-up."""
    monkeypatch.setattr(cli, "_setup_logging", lambda verbose: None)
    return cli.main


def test_bench_delegates_its_arguments(monkeypatch, quiet_main):
    calls = []
    fake = types.ModuleType("fastzk.bench")
    fake.main = lambda argv: calls.append(argv) or 4
    monkeypatch.setitem(sys.modules, "fastzk.bench", fake)
    assert quiet_main(["--hosts", "h:1", "bench", "--quick", "--json",
                       "o.json"]) == 4
    assert calls == [["--hosts", "h:1", "--quick", "--json", "o.json"]]
    fake.main = lambda argv: calls.append(argv)
    assert quiet_main(["bench", "--hosts", "z:2", "--plot", "p.png"]) == 0
    assert calls[-1] == ["--hosts", "z:2", "--plot", "p.png"]


def test_bench_missing_is_one_line_and_exit_2(monkeypatch, capsys,
                                              quiet_main):
    monkeypatch.setitem(sys.modules, "fastzk.bench", None)
    assert quiet_main(["bench", "--quick"]) == 2
    assert_one_line_error(capsys.readouterr().err, "not available")


# ---------------------------------------------------------------------------
# fastzk lock
# ---------------------------------------------------------------------------

CHECK_HELD = r"""
import sys
from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock
zk = KazooClient(hosts=sys.argv[1])
zk.start(timeout=30)
nodes = [c for c in zk.get_children("/L") if "__lock__" in c]
data = [zk.get("/L/" + n)[0] for n in nodes]
other = Lock(zk, "/L", "other")
got = other.acquire(blocking=False)
print("nodes=%d data=%r other_got=%s" % (len(nodes), data, got))
zk.stop()
sys.exit(7)
"""


def test_lock_holds_the_lock_while_the_command_runs(zk_hosts, kazoo_client):
    result = run("--hosts", zk_hosts, "lock", "--identifier", "cli-test",
                 "/L", "--", sys.executable, "-c", CHECK_HELD, zk_hosts)
    assert result.returncode == 7, result.stderr  # the command's status
    assert "nodes=1 data=[b'cli-test'] other_got=False" in result.stdout
    assert result.stderr == ""
    assert contenders(kazoo_client, "/L") == []  # released


def test_lock_timeout_when_held_by_another_client(zk_hosts, kazoo_client,
                                                  tmp_path):
    holder = KazooLock(kazoo_client, "/L", "the-holder")
    assert holder.acquire(timeout=10)
    marker = tmp_path / "ran"
    started = time.monotonic()
    result = run("--hosts", zk_hosts, "lock", "--timeout", "1", "/L", "--",
                 "touch", str(marker))
    assert result.returncode == cli.EXIT_LOCK_TIMEOUT == 75
    assert time.monotonic() - started < 15
    assert_one_line_error(result.stderr, "not acquired", "the-holder")
    assert not marker.exists()
    result = run("--hosts", zk_hosts, "lock", "--timeout", "0", "/L", "--",
                 "touch", str(marker))
    assert result.returncode == 75
    assert not marker.exists()
    # Only the holder's node is left: the CLI's own contender is gone.
    assert contenders(kazoo_client, "/L") == [holder.node]
    holder.release()


def test_lock_shared_is_a_read_lock(zk_hosts, kazoo_client):
    reader = KazooReadLock(kazoo_client, "/L", "reader")
    assert reader.acquire(timeout=10)
    result = run("--hosts", zk_hosts, "lock", "--shared", "--timeout", "10",
                 "/L", "--", sys.executable, "-c", "print('shared ok')")
    assert result.returncode == 0, result.stderr
    assert "shared ok" in result.stdout
    # Exclusive waits for the reader (a WriteLock, not kazoo's Lock).
    result = run("--hosts", zk_hosts, "lock", "--timeout", "0.5", "/L", "--",
                 "true")
    assert result.returncode == 75
    reader.release()
    assert contenders(kazoo_client, "/L") == []


CHILD_WAITS_FOR_SIGNAL = r"""
import signal, sys, time
def on_signal(signum, frame):
    with open(sys.argv[1], "w") as f:
        f.write(str(signum))
    sys.exit(3)
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
print("READY", flush=True)
time.sleep(60)
sys.exit(9)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_lock_forwards_signals_then_releases(zk_hosts, kazoo_client,
                                            tmp_path, signum):
    marker = tmp_path / "signal"
    proc = start("--hosts", zk_hosts, "lock", "/L", "--", sys.executable,
                 "-c", CHILD_WAITS_FOR_SIGNAL, str(marker))
    try:
        LineReader(proc.stdout).wait_for("^READY$")
        assert len(contenders(kazoo_client, "/L")) == 1  # held meanwhile
        proc.send_signal(signum)
        assert proc.wait(30) == 3  # the command's own exit status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert marker.read_text() == str(int(signum))
    assert "Traceback" not in proc.stderr.read()
    assert contenders(kazoo_client, "/L") == []


def test_lock_signal_while_waiting_abandons_the_wait(zk_hosts, kazoo_client,
                                                     tmp_path):
    holder = KazooLock(kazoo_client, "/L", "the-holder")
    assert holder.acquire(timeout=10)
    marker = tmp_path / "ran"
    proc = start("--hosts", zk_hosts, "lock", "/L", "--", "touch",
                 str(marker))
    try:
        wait_until(lambda: len(contenders(kazoo_client, "/L")) == 2,
                   what="the CLI's contender node")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_one_line_error(proc.stderr.read(), "SIGTERM", "not run")
    assert not marker.exists()
    assert contenders(kazoo_client, "/L") == [holder.node]
    holder.release()


def test_lock_command_not_found(zk_hosts, kazoo_client):
    result = run("--hosts", zk_hosts, "lock", "/L", "--",
                 "no-such-command-%s" % uuid.uuid4().hex)
    assert result.returncode == cli.EXIT_NOT_FOUND == 127
    assert_one_line_error(result.stderr, "not found")
    assert contenders(kazoo_client, "/L") == []


# ---------------------------------------------------------------------------
# fastzk watch
# ---------------------------------------------------------------------------

TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} "


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_watch_streams_creates_changes_and_deletes(zk_hosts, kazoo_client,
                                                   signum):
    kazoo_client.create("/w", b"")
    proc = start("--hosts", zk_hosts, "watch", "/w")
    try:
        out = LineReader(proc.stdout)
        out.wait_for(TIME + r"STATE CONNECTED")
        out.wait_for(TIME + r"WATCHING /w$")
        # One change at a time: the line shows the stat read after it.
        kazoo_client.create("/w/a", b"hello")
        out.wait_for(TIME + r"CREATED /w/a dataLength=5 version=0$")
        kazoo_client.set("/w/a", b"xy")
        out.wait_for(TIME + r"CHANGED /w/a dataLength=2 version=1$")
        kazoo_client.create("/w/a/deep", b"123")  # recursive
        out.wait_for(TIME + r"CREATED /w/a/deep dataLength=3 version=0$")
        kazoo_client.delete("/w/a", recursive=True)
        out.wait_for(TIME + r"DELETED /w/a/deep$")
        out.wait_for(TIME + r"DELETED /w/a$")
        kazoo_client.create("/elsewhere", b"")  # outside: not shown
        kazoo_client.set("/w", b"!")
        out.wait_for(TIME + r"CHANGED /w dataLength=1 version=1$")
        proc.send_signal(signum)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not [line for line in out.lines if "elsewhere" in line]
    assert proc.stderr.read() == ""


# ---------------------------------------------------------------------------
# fastzk locks
# ---------------------------------------------------------------------------

def _rows(stdout):
    """{identifier: (seq, state, check, line)} from the listing."""
    rows = {}
    order = []
    for line in stdout.splitlines():
        match = re.match(r'^\s*(\d+)\s+(exclusive|shared)\s+(holder|waiting)'
                         r'\s+(\S+)\s+(0x[0-9a-f]+)\s+\S+\s+"([^"]*)"', line)
        if match:
            seq, _kind, state, check, _session, ident = match.groups()
            rows[ident] = (int(seq), state, check, line)
            order.append(ident)
    return rows, order


def test_locks_lists_in_order_and_flags_abandoned(
        zk_server, zk_hosts, zk_proxy_hosts, proxy, kazoo_client):
    kazoo_client.create("/L", b"")
    # 1. The holder: its client is cut off (the session lives on 30 s).
    cut_off = kazoo(zk_proxy_hosts, timeout=30.0)
    waiter_client = kazoo(zk_hosts)
    ghost_client = kazoo(zk_hosts)
    try:
        # Names sort against the sequence order: lock order must not be
        # the order of names.
        holder_node = cut_off.create("/L/" + "f" * 32 + "__lock__", b"cut-off",
                                     ephemeral=True, sequence=True)
        # 2. A real waiter: a kazoo Lock that watches its predecessor.
        waiter = KazooLock(waiter_client, "/L", "waiter")
        outcome = []

        def wait_for_lock():
            try:
                outcome.append(waiter.acquire())
            except Exception as exc:  # cancelled at the end
                outcome.append(exc)

        waiting = threading.Thread(target=wait_for_lock, daemon=True)
        waiting.start()
        wait_until(lambda: len(contenders(kazoo_client, "/L")) == 2,
                   what="the waiter's node")
        # 3. A node created by hand by a session that then does nothing.
        ghost_node = ghost_client.create("/L/" + "0" * 32 + "__lock__",
                                         b"ghost", ephemeral=True,
                                         sequence=True)
        full = zk_hosts[zk_hosts.index("/"):] + holder_node
        wait_until(lambda: full in zk_server.command("wchp"),
                   what="the waiter's watch on the holder")
        sid = "0x%x" % cut_off.client_id[0]
        proxy.reject(True)
        proxy.cut()
        wait_until(lambda: sid not in zk_server.command("cons"),
                   what="the cut-off session leaving cons")

        result = run("--hosts", zk_hosts, "locks", "/L")
        assert result.returncode == 0, result.stderr
        rows, order = _rows(result.stdout)
        assert order == ["cut-off", "waiter", "ghost"], result.stdout
        seqs = [rows[name][0] for name in order]
        assert seqs == sorted(seqs)
        assert seqs[2] == int(ghost_node[-10:])
        assert rows["cut-off"][1:3] == ("holder", "ABANDONED?")
        assert rows["waiter"][1:3] == ("waiting", "ok")
        assert rows["ghost"][1:3] == ("waiting", "ABANDONED?")
        assert "0x%x" % ghost_client.client_id[0] in rows["ghost"][3]
        assert re.search(r"^ABANDONED\? \d+ \"cut-off\": session %s has no "
                         r"connection" % sid, result.stdout, re.M)
        assert re.search(r"^ABANDONED\? \d+ \"ghost\": nobody waits",
                         result.stdout, re.M)
        assert "2 of 3 contenders look abandoned" in result.stdout
        assert outcome == []  # still waiting
        waiter.cancel()
        waiting.join(10)
    finally:
        proxy.reject(False)
        for client in (ghost_client, waiter_client, cut_off):
            stop(client)


def test_locks_without_four_letter_words(zk_server_factory, kazoo_client):
    server = zk_server_factory(extra_config={"4lw.commands.whitelist": "srvr"})
    client = kazoo(server.address)
    try:
        lock = KazooLock(client, "/L", "only")
        assert lock.acquire(timeout=10)
        result = run("--hosts", server.address, "locks", "/L")
        assert result.returncode == 0, result.stderr
        rows, order = _rows(result.stdout)
        assert order == ["only"]
        assert rows["only"][1:3] == ("holder", "-")
        assert "(four-letter words disabled: cannot check)" in result.stdout
        lock.release()
        result = run("--hosts", server.address, "locks", "/L")
        assert result.returncode == 0
        assert "/L: no contenders" in result.stdout
    finally:
        stop(client)


# ---------------------------------------------------------------------------
# Connection errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["locks", "/x"],
    ["watch", "/x"],
    ["lock", "/x", "--", "true"],
])
def test_unreachable_hosts_give_one_line(command):
    hosts = "127.0.0.1:%d" % free_port()  # nothing listens there
    result = run("--hosts", hosts, "--timeout", "1", *command)
    assert result.returncode == cli.EXIT_ERROR
    assert_one_line_error(result.stderr, "cannot connect", hosts)
    assert result.stdout == ""


def test_invalid_hosts_give_one_line():
    result = run("--hosts", "localhost:notaport", "locks", "/x")
    assert result.returncode == cli.EXIT_USAGE
    assert_one_line_error(result.stderr, "invalid --hosts")


def test_hosts_from_the_environment(zk_hosts, kazoo_client):
    kazoo_client.create("/envcheck", b"")
    env = _env()
    env["ZOOKEEPER_HOSTS"] = zk_hosts
    result = subprocess.run(fastzk_cmd("locks", "/envcheck"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "/envcheck: no contenders" in result.stdout


def _silent_listener():
    """A port that accepts TCP connections and never answers ZooKeeper's
    handshake (the listener never accepts)."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


@pytest.mark.parametrize("hosts, reasons", [
    ("127.0.0.1:{free}", ["connection refused"]),
    ("no-such-host.invalid:2181", ["name not resolved"]),
    ("127.0.0.1:{free},no-such-host.invalid:2181",
     ["127.0.0.1:{free}: connection refused",
      "no-such-host.invalid:2181: name not resolved"]),
], ids=["refused", "unresolved", "both"])
def test_refused_hosts_fail_at_once_saying_why(hosts, reasons):
    free = free_port()
    hosts = hosts.format(free=free)
    started = time.monotonic()
    result = run("--hosts", hosts, "locks", "/x")  # default --timeout: 15 s
    elapsed = time.monotonic() - started
    assert result.returncode == cli.EXIT_ERROR
    assert_one_line_error(result.stderr, "cannot connect", hosts,
                          *[r.format(free=free) for r in reasons])
    assert "within" not in result.stderr
    # The interpreter's start-up included; the timeout was 15 s.
    assert elapsed < 5, elapsed


def test_a_host_that_does_not_refuse_is_waited_for_and_named():
    listener = _silent_listener()
    try:
        silent = "127.0.0.1:%d" % listener.getsockname()[1]
        refused = "127.0.0.1:%d" % free_port()
        started = time.monotonic()
        # Time for both: an attempt on the silent one waits 3.3 s (a
        # third of the session timeout).
        result = run("--hosts", refused + "," + silent, "--timeout", "4.5",
                     "locks", "/x")
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert result.returncode == cli.EXIT_ERROR
    assert_one_line_error(result.stderr, "within 4.5 s",
                          refused + ": connection refused",
                          silent + ": ")
    assert re.search(re.escape(silent) + ": (no answer yet|timed out "
                     "waiting for the server)", result.stderr), result.stderr
    assert 4.5 <= elapsed < 15, elapsed


@pytest.mark.parametrize("value", ["inf", "1e12", "Infinity"])
def test_infinite_timeouts_mean_no_limit(zk_hosts, kazoo_client, value):
    result = run("--hosts", zk_hosts, "--timeout", value, "lock",
                 "--timeout", value, "/L", "--", sys.executable, "-c",
                 "print('ran')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"
    assert result.stderr == ""
    kazoo_client.create("/W", b"")
    result = run("--hosts", zk_hosts, "--timeout", value, "locks", "/W")
    assert result.returncode == 0, result.stderr
    assert "/W: no contenders" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["locks", "--recheck", "inf", "/x"], "between 0 and 3600"),
    (["--timeout", "nan", "locks", "/x"], "must be >= 0"),
    (["--timeout", "-1", "locks", "/x"], "must be >= 0"),
    (["lock", "--timeout=-inf", "/x", "--", "true"], "must be >= 0"),
])
def test_out_of_range_seconds_are_usage_errors(args, fragment):
    result = run("--hosts", "127.0.0.1:%d" % free_port(), *args)
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    assert_one_line_error(result.stderr, fragment)


def test_watch_with_an_infinite_timeout(zk_hosts, kazoo_client):
    kazoo_client.create("/W", b"")
    proc = start("--hosts", zk_hosts, "watch", "--connect-timeout", "inf",
                 "/W")
    try:
        out = LineReader(proc.stdout)
        out.wait_for(r" WATCHING /W$")
        kazoo_client.create("/W/a", b"xyz")
        out.wait_for(r" CREATED /W/a dataLength=3 version=0$")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr.read() == ""


def _alive(pid):
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="PR_SET_PDEATHSIG is Linux's")
def test_lock_command_dies_with_fastzk(zk_hosts, kazoo_client, tmp_path):
    pid_file = tmp_path / "pid"
    proc = start("--hosts", zk_hosts, "lock", "/L", "--", sys.executable,
                 "-c", "import os, sys, time; "
                 "open(sys.argv[1], 'w').write(str(os.getpid())); "
                 "time.sleep(60)", str(pid_file))
    child = None
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text(),
                   what="the command's pid file")
        child = int(pid_file.read_text())
        assert _alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: not _alive(child), timeout=3,
                   what="the command's death")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_locks_checks_the_servers_that_answer_and_names_the_others(
        zk_hosts, zk_proxy_hosts, proxy, zk_server, kazoo_client):
    kazoo_client.create("/L", b"")
    down = "127.0.0.1:%d" % free_port()
    hosts = zk_hosts.replace("/", "," + down + "/", 1)
    holder_client = kazoo(zk_hosts)
    cut_off = kazoo(zk_proxy_hosts, timeout=30.0)
    try:
        holder = KazooLock(holder_client, "/L", "holder")
        assert holder.acquire(timeout=10)
        holder_client.create("/L/" + "0" * 32 + "__lock__", b"ghost",
                             ephemeral=True, sequence=True)
        cut_off.create("/L/" + "f" * 32 + "__lock__", b"cut-off",
                       ephemeral=True, sequence=True)
        sid = "0x%x" % cut_off.client_id[0]
        proxy.reject(True)
        proxy.cut()
        wait_until(lambda: sid not in zk_server.command("cons"),
                   what="the cut-off session leaving cons")
        result = run("--hosts", hosts, "locks", "--recheck", "0.2", "/L")
        assert result.returncode == 0, result.stderr
        rows, order = _rows(result.stdout)
        assert order == ["holder", "ghost", "cut-off"], result.stdout
        assert rows["holder"][1:3] == ("holder", "ok"), result.stdout
        assert rows["ghost"][1:3] == ("waiting", "ABANDONED?"), result.stdout
        assert rows["cut-off"][1:3] == ("waiting", "unknown"), result.stdout
        assert re.search(r"^\(not asked: %s: .*refused" % re.escape(down),
                         result.stdout, re.M | re.I), result.stdout
        assert "1 of 3 contenders look abandoned" in result.stdout
    finally:
        proxy.reject(False)
        for client in (cut_off, holder_client):
            stop(client)
