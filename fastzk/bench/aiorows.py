"""The asyncio section of the table: :class:`fastzk.aio.AsyncClient`
beside aiozk 0.32 (in the kazoo column) and the figures of both over the
bare asyncio loop's (``fastzk.benchcases._aiolimit``), measured in the
same alternated rounds (``fastzk.benchcases.bench_aio``)."""

from typing import Any, Dict, List, Optional, Tuple

from fastzk.bench.results import Row
from fastzk.bench.targets import TARGETS

#: The clients of the section, as the suite's results name them.
AIOZK = "aiozk"
BARE = "aio-bare"
#: fastzk with reply batching off, in the gathered case.
UNBATCHED = "aio-fastzk-unbatched"

#: The event loops measured: the key prefix of each, and its name.
LOOPS = (("aio.", "asyncio"), ("aio.uvloop.", "uvloop"))

Suite = Dict[Tuple[str, str], Dict[str, Any]]


def _figure(suite: Suite, key: str, impl: str,
            figure: str) -> Optional[float]:
    value = (suite.get((key, impl)) or {}).get(figure)
    return None if value is None else float(value)


def over_bare(suite: Suite, key: str, impl: str,
              figure: str) -> Optional[float]:
    """``impl``'s ``figure`` ("rate" or "cpu_us_per_op") in case ``key``
    over the bare loop's, or None when either is missing."""
    bare = _figure(suite, key, BARE, figure)
    mine = _figure(suite, key, impl, figure)
    if not bare or mine is None:
        return None
    return mine / bare


def _x(value: Optional[float]) -> str:
    return "n/a" if value is None else "%.2fx" % value


def _rate(value: Optional[float]) -> str:
    return "n/a" if value is None else "{:,.0f}/s".format(value)


def _us(value: Optional[float]) -> str:
    return "n/a" if value is None else "%.1f us" % value


def _count(value: Optional[float]) -> str:
    return "n/a" if value is None else "%d" % value


def _aiozk_note(suite: Suite, key: str) -> str:
    why = (suite.get((key, "fastzk")) or {}).get("aiozk_missing")
    return "aiozk not measured: %s" % why if why else ""


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def bare_rows(suite: Suite, key: str, label: str, cpu_label: str,
              cpu_target: str) -> List[Row]:
    """The four rows of a round-trip case: the rate of aiozk and fastzk,
    both over the bare loop's, their CPU per request, both over the bare
    loop's (judged against ``TARGETS[cpu_target]``)."""
    rows = [Row(label, _figure(suite, key, AIOZK, "rate"),
                _figure(suite, key, "fastzk", "rate"), "/s", key=key,
                note=_join("bare loop %s" % _rate(
                    _figure(suite, key, BARE, "rate")),
                    _aiozk_note(suite, key)))]
    k = over_bare(suite, key, AIOZK, "rate")
    f = over_bare(suite, key, "fastzk", "rate")
    rows.append(Row("  rate / the bare loop's", k, f, "", ratio=False,
                    judge=False, kazoo_text=_x(k), fastzk_text=_x(f),
                    target=TARGETS["aio.rate_over_bare"],
                    key=key + ".rate_over_bare"))
    rows.append(Row(cpu_label, _figure(suite, key, AIOZK, "cpu_us_per_op"),
                    _figure(suite, key, "fastzk", "cpu_us_per_op"), " us",
                    higher_better=False, key=key + ".cpu_us",
                    note="bare loop %s" % _us(
                        _figure(suite, key, BARE, "cpu_us_per_op"))))
    k = over_bare(suite, key, AIOZK, "cpu_us_per_op")
    f = over_bare(suite, key, "fastzk", "cpu_us_per_op")
    rows.append(Row("    CPU / the bare loop's", k, f, "", ratio=False,
                    judge=False, higher_better=False, kazoo_text=_x(k),
                    fastzk_text=_x(f), target=TARGETS[cpu_target],
                    key=key + ".cpu_over_bare"))
    return rows


def unbatched_rows(suite: Suite, key: str) -> List[Row]:
    """fastzk with ``reply_batching=0`` in the same rounds: its rate and
    CPU per request over the bare loop's (what batching saves), or
    nothing when it was not measured."""
    if (key, UNBATCHED) not in suite:
        return []
    rate = over_bare(suite, key, UNBATCHED, "rate")
    cpu = over_bare(suite, key, UNBATCHED, "cpu_us_per_op")
    return [
        Row("  reply_batching=0: rate / the bare loop's", None, rate,
            "", ratio=False, judge=False, kazoo_text="-",
            fastzk_text=_x(rate), key=key + ".unbatched.rate_over_bare",
            note=_rate(_figure(suite, key, UNBATCHED, "rate"))),
        Row("    CPU / the bare loop's, reply_batching=0", None, cpu, "",
            ratio=False, judge=False, higher_better=False, kazoo_text="-",
            fastzk_text=_x(cpu), key=key + ".unbatched.cpu_over_bare",
            note=_us(_figure(suite, key, UNBATCHED, "cpu_us_per_op"))),
    ]


def lock_rows(suite: Suite, key: str) -> List[Row]:
    """Failed non-blocking attempts on a held lock: rate (the bare loop's
    one getChildren per attempt in the note), CPU and writes per
    attempt."""
    return [
        Row("failed non-blocking lock attempts, held lock",
            _figure(suite, key, AIOZK, "rate"),
            _figure(suite, key, "fastzk", "rate"), "/s", key=key,
            note=_join("bound: one getChildren round trip (bare loop) %s"
                       % _rate(_figure(suite, key, BARE, "rate")),
                       _aiozk_note(suite, key))),
        Row("  CPU per failed attempt (us)",
            _figure(suite, key, AIOZK, "cpu_us_per_op"),
            _figure(suite, key, "fastzk", "cpu_us_per_op"), " us",
            higher_better=False, target=TARGETS["aio.lock.cpu"],
            key=key + ".cpu_us", note="bare loop %s" % _us(
                _figure(suite, key, BARE, "cpu_us_per_op"))),
        Row("  server writes per failed attempt",
            _figure(suite, key, AIOZK, "writes_per_attempt"),
            _figure(suite, key, "fastzk", "writes_per_attempt"), "",
            higher_better=False, target=TARGETS["aio.lock.writes"],
            key=key + ".writes"),
    ]


def watch_row(suite: Suite, key: str) -> Row:
    """Change events delivered per second: fastzk's one recursive watch,
    aiozk's DataWatcher on every node (it has no recursive watch)."""
    ceiling = _figure(suite, key, "fastzk", "writer_rate")
    return Row("change events delivered", _figure(suite, key, AIOZK, "rate"),
               _figure(suite, key, "fastzk", "rate"), "/s", key=key,
               note=_join("fastzk: zk.watch(path, recursive=True); aiozk: "
                          "a DataWatcher per node (no recursive watch)",
                          "bare loop (one recursive watch) %s, fastzk %s of "
                          "it" % (_rate(_figure(suite, key, BARE, "rate")),
                                  _x(over_bare(suite, key, "fastzk",
                                               "rate"))),
                          "writer ceiling ~%s" % _rate(ceiling)
                          if ceiling else "", _aiozk_note(suite, key)))


def sessions_rows(suite: Suite, key: str) -> List[Row]:
    """Many idle sessions in one process: seconds to connect all, RSS
    per session, threads (the bare loop's in the notes)."""
    n = _figure(suite, key, "fastzk", "sessions") or _figure(
        suite, key, AIOZK, "sessions")
    count = "{:,}".format(int(n)) if n else "many"

    def bare(figure: str, fmt: str) -> str:
        value = _figure(suite, key, BARE, figure)
        return "bare loop " + ("n/a" if value is None else fmt % value)

    return [
        Row("%s sessions, one loop: connect all" % count,
            _figure(suite, key, AIOZK, "connect_s"),
            _figure(suite, key, "fastzk", "connect_s"), " s",
            higher_better=False, key=key + ".connect_s",
            note=_join(bare("connect_s", "%.2f s"),
                       _aiozk_note(suite, key))),
        Row("  RSS per idle session (KiB)",
            _figure(suite, key, AIOZK, "rss_per_session_kib"),
            _figure(suite, key, "fastzk", "rss_per_session_kib"), " KiB",
            higher_better=False, target=TARGETS["aio.sessions.rss"],
            key=key + ".rss_kib",
            note=bare("rss_per_session_kib", "%.1f KiB")),
        Row("  threads in the process",
            _figure(suite, key, AIOZK, "threads"),
            _figure(suite, key, "fastzk", "threads"), "",
            higher_better=False, ratio=False,
            kazoo_text=_count(_figure(suite, key, AIOZK, "threads")),
            fastzk_text=_count(_figure(suite, key, "fastzk", "threads")),
            target=TARGETS["aio.sessions.threads"], key=key + ".threads",
            note=bare("threads", "%d")),
    ]


def _measured(suite: Suite, key: str) -> bool:
    return (key, "fastzk") in suite


def aio_sections(suite: Suite) -> List[Tuple[str, List[Row]]]:
    """``[(title, rows)]``: one section per event loop measured."""
    out = []
    for prefix, loop in LOOPS:
        rows: List[Row] = []
        key = prefix + "sequential_get_children"
        if _measured(suite, key):
            rows += bare_rows(suite, key, "awaited sequential get_children",
                              "  CPU per request (us)",
                              "aio.sequential.cpu_over_bare")
        key = prefix + "gathered_get_children"
        if _measured(suite, key):
            rows += bare_rows(suite, key, "2,000 gathered get_children",
                              "  CPU per request (us)",
                              "aio.gathered.cpu_over_bare")
            rows += unbatched_rows(suite, key)
        key = prefix + "lock_failed_attempt"
        if _measured(suite, key):
            rows += lock_rows(suite, key)
        key = prefix + "watch_events"
        if _measured(suite, key):
            rows.append(watch_row(suite, key))
        key = prefix + "sessions"
        if _measured(suite, key):
            rows += sessions_rows(suite, key)
        if rows:
            out.append((
                "asyncio, %s loop: fastzk.aio.AsyncClient vs aiozk 0.32 "
                "(in the kazoo column) and the bare asyncio loop "
                "(fastzk/benchcases/_aiolimit.py), same rounds" % loop,
                rows))
    return out


def aio_note(suite: Suite) -> Optional[str]:
    """The note under the table explaining the asyncio rows, or None when
    none was measured."""
    if not any(key.startswith("aio.") for key, _ in suite):
        return None
    return (
        "asyncio: every client runs on one event loop in the benchmark's "
        "process, rounds alternated aiozk, bare loop, fastzk.  The bare "
        "loop is an asyncio.Protocol speaking the wire format with no "
        "client logic (ConnectRequest, then getChildren frames, replies "
        "counted): the limit of a client on that loop; it reads every "
        "reply as it arrives, where fastzk batches the replies of a "
        "pipelined burst by default (reply_batching=0.001 s: a pause of "
        "reading after a read of few replies while 64 or more are "
        "outstanding; the reply_batching=0 rows are fastzk without it, "
        "in the same rounds).  CPU = user+system "
        "of the process (getrusage) over a client's rounds, median round.  "
        "aiozk 0.32 has no non-blocking acquire: its failed attempt is "
        "its Lock recipe's own steps without the wait (create, read the "
        "siblings, delete), two writes.  writes = zxid delta around each "
        "round.  Sessions: a fresh process per client opening them (32 "
        "connecting at a time), RSS after 1 s idle minus before, over the "
        "count.")
