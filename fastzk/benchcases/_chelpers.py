"""The benchmarks' reference programs: ZooKeeper's C client helper and
the raw wire loop (``benchmarks/c`` of a source checkout), built, run
in their own processes, and their figures read."""

import collections
import os


#: What a round run in another process reports: the seconds it took and
#: the CPU seconds that process used (None when unknown).
Measured = collections.namedtuple("Measured", "seconds cpu_seconds")


def package_root():
    """The directory holding the ``fastzk`` package these cases measure
    (a source checkout's root, or ``site-packages``)."""
    import fastzk

    return os.path.dirname(os.path.dirname(os.path.abspath(fastzk.__file__)))


#: Why the C references (ZooKeeper's C client, the raw wire loop) are not
#: measured against an ensemble reached over TLS or with SASL.
PLAINTEXT_ONLY_REASON = ("plaintext only, and the ensemble is reached over "
                         "TLS or with SASL")


def plaintext_only_reason():
    """:data:`PLAINTEXT_ONLY_REASON` when the measured ensemble is reached
    over TLS or with SASL, else None."""
    from fastzk.benchcases._clients import SECURITY_VARIABLE

    return PLAINTEXT_ONLY_REASON if os.environ.get(
        SECURITY_VARIABLE, "").strip() else None


def child_env():
    """The environment of a helper process: it imports the same fastzk."""
    env = dict(os.environ)
    root = package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                if env.get("PYTHONPATH") else "")
    return env


def _checkout_source(variable, name):
    path = os.environ.get(variable) or os.path.join(
        package_root(), "benchmarks", "c", name)
    return path if os.path.isfile(path) else None


def c_source():
    """The C client helper's source: ``FASTZK_BENCH_C_SOURCE``, else
    ``benchmarks/c/zkc_rounds.c`` of the source checkout fastzk runs from;
    None when neither exists (an installed package)."""
    return _checkout_source("FASTZK_BENCH_C_SOURCE", "zkc_rounds.c")


def raw_source():
    """The raw wire loop's source: ``FASTZK_BENCH_RAW_SOURCE``, else
    ``benchmarks/c/raw_rounds.c`` of the source checkout fastzk runs from;
    None when neither exists (an installed package)."""
    return _checkout_source("FASTZK_BENCH_RAW_SOURCE", "raw_rounds.c")


def _compile(source, binary, flags=(), libs=()):
    """Compile one C file; returns ``(binary, None)`` or ``(None, why)``."""
    import shutil
    import subprocess

    if source is None:
        return None, "source not installed (benchmarks/c of a fastzk checkout)"
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler"
    proc = subprocess.run(
        [compiler, "-O2"] + list(flags) + ["-o", binary, source] + list(libs),
        capture_output=True, text=True)
    if proc.returncode != 0:
        return None, "build failed: %s" % proc.stderr.strip()[-300:]
    return binary, None


def build_c_client(workdir):
    """Compile ``benchmarks/c/zkc_rounds.c`` (:func:`c_source`) against
    libzookeeper_mt (Debian's ``libzookeeper-mt-dev``, installed by ``make
    bench``).

    :returns: ``(path, None)``, or ``(None, why)`` when it cannot be built.
    """
    source = c_source()
    if source is not None and not os.path.exists(
            "/usr/include/zookeeper/zookeeper.h"):
        return None, "libzookeeper-mt-dev not installed"
    return _compile(source, os.path.join(workdir, "zkc_rounds"),
                    flags=["-DTHREADED"], libs=["-lzookeeper_mt"])


_raw_builds: "dict[str | None, tuple[str | None, str | None]]" = {}


def build_raw_loop(workdir=None):
    """Compile ``benchmarks/c/raw_rounds.c`` (:func:`raw_source`; plain C,
    no library), once per process: into ``workdir``, else a temporary
    directory.

    :returns: ``(path, None)``, or ``(None, why)`` when it cannot be built.
    """
    import tempfile

    source = raw_source()
    if source not in _raw_builds:
        directory = workdir or tempfile.mkdtemp(prefix="fastzk-raw-")
        _raw_builds[source] = _compile(
            source, os.path.join(directory, "raw_rounds"))
    return _raw_builds[source]


def parse_figures(line):
    """The figures of one line a C helper prints, ``key=value`` pairs
    separated by spaces (``count=200 wall_s=0.0312 cpu_s=0.0021``), as a
    dict of ints (decimal or ``0x`` hex) and floats.

    :raises ValueError: on anything else, naming the line.
    """
    figures = {}
    for item in line.split():
        key, sep, text = item.partition("=")
        if not sep or not key or not text:
            raise ValueError("not key=value figures: %r" % (line,))
        try:
            figures[key] = int(text, 0)
        except ValueError:
            try:
                figures[key] = float(text)
            except ValueError:
                raise ValueError("not a number in %r: %r"
                                 % (line, item)) from None
    if not figures:
        raise ValueError("no figures in %r" % (line,))
    return figures


def measured_from(figures, count):
    """:class:`Measured` from a helper's figures for a round of ``count``
    requests.

    :raises ValueError: when the helper reports another count, or lacks
                        ``wall_s``.
    """
    if figures.get("count") != count:
        raise ValueError("the helper made %r requests, not %d"
                         % (figures.get("count"), count))
    if "wall_s" not in figures:
        raise ValueError("no wall_s in %r" % (figures,))
    return Measured(float(figures["wall_s"]),
                    None if "cpu_s" not in figures else float(figures["cpu_s"]))


class _Helper(object):
    """A C helper process (see ``benchmarks/c``) that answers one line of
    figures per command line."""

    what = "the helper"

    def __init__(self, argv):
        import subprocess

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        #: The words of the helper's first line ("ready ...").
        self.ready = self.proc.stdout.readline().split()

    def command(self, line):
        """Send one command; returns its figures (:func:`parse_figures`)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("%s failed (exit %s)"
                               % (self.what, self.proc.wait()))
        return parse_figures(reply)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()


class CClient(_Helper):
    """One session of ZooKeeper's C client in a helper process, making
    timed rounds of synchronous reads on request (see
    ``benchmarks/c/zkc_rounds.c``).

    :param binary: from :func:`build_c_client`.
    """

    what = "the C client"

    def __init__(self, binary, hosts):
        super().__init__([binary, hosts])
        if self.ready != ["ready"]:
            self.close()
            raise RuntimeError("the C client did not connect to %s" % hosts)

    def round(self, op, path, n):
        """Make ``n`` synchronous ``op`` ("children" or "get") calls on
        ``path``; returns :class:`Measured`."""
        return measured_from(self.command("%s %s %d" % (op, path, n)), n)


class RawLoop(_Helper):
    """The client-side limit: one session spoken over one socket with no
    client logic, in a helper process (``benchmarks/c/raw_rounds.c``).

    :param binary: from :func:`build_raw_loop`.
    """

    what = "the raw loop"

    def __init__(self, binary, hosts):
        super().__init__([binary, hosts])
        if self.ready[:1] != ["ready"]:
            self.close()
            raise RuntimeError("the raw loop did not connect to %s" % hosts)
        #: The handshake's figures: ``session_id``, ``timeout_ms``.
        self.session = parse_figures(" ".join(self.ready[1:]))

    def children(self, path, n):
        """``n`` synchronous getChildren round trips; returns
        :class:`Measured`."""
        return measured_from(self.command("children %s %d" % (path, n)), n)

    def pipelined(self, path, n, window):
        """``n`` getChildren requests, ``window`` written then ``window``
        replies read at a time; returns :class:`Measured`."""
        return measured_from(
            self.command("pipelined %s %d %d" % (path, n, window)), n)


class PythonLoop(_Helper):
    """The interpreter's floor: the raw loop's synchronous round trips
    written in Python with no client logic, in a helper process
    (:mod:`fastzk.benchcases._pyrounds`)."""

    what = "the Python loop"
    name = "python-loop"

    def __init__(self, hosts):
        import sys

        super().__init__([sys.executable, "-m", "fastzk.benchcases._pyrounds",
                          hosts])
        if self.ready[:1] != ["ready"]:
            self.close()
            raise RuntimeError("the Python loop did not connect to %s"
                               % hosts)

    def children(self, path, n):
        """``n`` synchronous getChildren round trips; returns
        :class:`Measured`."""
        return measured_from(self.command("children %s %d" % (path, n)), n)


class RawReference(object):
    """``reference(path, n, window=None)``: ``({"raw-loop": round}, None)``
    for :class:`Alternating`'s ``others`` (a :class:`RawLoop` session
    making ``n`` synchronous getChildren round trips on ``path`` per
    round, or ``n`` pipelined ones in windows of ``window``), or ``({},
    why)`` when the loop cannot be built; :meth:`python` gives the same
    for the :class:`PythonLoop`.  :meth:`close` ends the sessions it
    started."""

    name = "raw-loop"

    def __init__(self, hosts):
        self.hosts = hosts
        self._loops = []

    def __call__(self, path, n, window=None):
        why = plaintext_only_reason()
        if why:
            return {}, why
        binary, why = build_raw_loop()
        if binary is None:
            return {}, why
        loop = RawLoop(binary, self.hosts)
        self._loops.append(loop)
        if window is None:
            return {self.name: lambda: loop.children(path, n)}, None
        return {self.name: lambda: loop.pipelined(path, n, window)}, None

    def python(self, path, n):
        """``({"python-loop": round}, None)``: a :class:`PythonLoop`
        making ``n`` synchronous getChildren round trips on ``path`` per
        round, or ``({}, why)``."""
        why = plaintext_only_reason()
        if why:
            return {}, why
        loop = PythonLoop(self.hosts)
        self._loops.append(loop)
        return {PythonLoop.name: lambda: loop.children(path, n)}, None

    def close(self):
        for loop in self._loops:
            loop.close()
        del self._loops[:]


def references(*results):
    """Merge ``(others, why)`` results of :class:`RawReference` and the
    ``c_reference`` fixture: ``(others, {"c_client_missing": why, ...})``
    with a ``*_missing`` entry for each reference left out."""
    others, missing = {}, {}
    for key, (more, why) in results:
        others.update(more)
        if why:
            missing[key] = why
    return others, missing


# -- a writer in another process ------------------------------------------------
