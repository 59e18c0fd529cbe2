"""Rows shared by several sections of the table: CPU per request, the
opt-in spin, the client-side limit (figures over the raw wire loop's)
and TLS beside plaintext."""

from fastzk.bench.results import Row, _get
from fastzk.bench.targets import TARGETS

#: The two clients the table compares.
IMPLS = ("kazoo", "fastzk")

_C_CLIENT = "ZooKeeper C client {:,.0f}/s = {:.2f}x kazoo"
# For the failed-attempt row: the floor of an attempt that reads first.
_READ_BOUND = ("bound: one getChildren round trip (ZooKeeper C client) "
               "{:,.0f}/s = {:.1f}x kazoo")


def _c_client_note(suite, key, kazoo, text=_C_CLIENT):
    """The ZooKeeper C client's figure for a row, if measured, formatted
    by ``text`` with its rate and its ratio to kazoo's."""
    c = _get(suite, key, "zookeeper-c")
    if c is not None and kazoo:
        return text.format(c, c / kazoo)
    missing = (suite.get((key, "fastzk")) or {}).get("c_client_missing")
    return "C client not measured: %s" % missing if missing else ""


#: The raw wire loop's and the fastzk client made with the opt-in spin
#: (``FASTZK_SPIN_US=200``; the default client does not spin), in the
#: suite's results (see fastzk.benchcases.bench_client).
RAW_LOOP = "raw-loop"
SPIN_ON = "fastzk-spin200"
#: The raw loop's synchronous round trips written in Python: the
#: interpreter's floor (see fastzk.benchcases._pyrounds).
PYTHON_LOOP = "python-loop"

#: fastzk with reply batching off (``reply_batching=0``), in the
#: pipelined case (see fastzk.benchcases.bench_client).
UNBATCHED = "fastzk-unbatched"

# The result keys of the figures of clients other than fastzk's.
_IMPL_KEYS = {SPIN_ON: ".spin_on", PYTHON_LOOP: ".python_loop",
              UNBATCHED: ".unbatched"}


def _cpu_us(entry):
    return (entry or {}).get("cpu_us_per_op")


def _cpu_row(suite, key, label="  CPU per request (us)"):
    """Client CPU microseconds per request of a round-trip case: kazoo's
    and fastzk's, the C client's and the raw loop's in the note."""
    others = []
    for name, impl in (("ZooKeeper C client", "zookeeper-c"),
                       ("raw loop", RAW_LOOP)):
        cpu = _cpu_us(suite.get((key, impl)))
        if cpu is not None:
            others.append("%s %.1f us" % (name, cpu))
    return Row(label, _cpu_us(suite.get((key, "kazoo"))),
               _cpu_us(suite.get((key, "fastzk"))), " us",
               higher_better=False, note=", ".join(others),
               key=key + ".cpu_us")


def _over_raw(suite, key, impl, figure):
    """``figure`` ("rate" or "cpu_us_per_op") of ``impl`` over the raw
    loop's in case ``key``, or None."""
    raw = (suite.get((key, RAW_LOOP)) or {}).get(figure)
    mine = (suite.get((key, impl)) or {}).get(figure)
    if not raw or mine is None:
        return None
    return mine / float(raw)


def _x(value):
    return "n/a" if value is None else "%.2fx" % value


def _limit_row(suite, key, label, figure, impl="fastzk", kazoo=True,
               target=None):
    """A row of the client-side-limit section: kazoo's and ``impl``'s
    ``figure`` as multiples of the raw loop's; the raw loop's own and the
    C client's multiple in the note."""
    k = _over_raw(suite, key, "kazoo", figure) if kazoo else None
    f = _over_raw(suite, key, impl, figure)
    raw = (suite.get((key, RAW_LOOP)) or {}).get(figure)
    if figure == "rate":
        note = "raw loop n/a" if raw is None else \
            "raw loop {:,.0f}/s".format(raw)
    else:
        note = "raw loop n/a" if raw is None else "raw loop %.1f us" % raw
    c = _over_raw(suite, key, "zookeeper-c", figure)
    if c is not None and kazoo:
        note += ", ZooKeeper C client %s" % _x(c)
    missing = (suite.get((key, "fastzk")) or {}).get("raw_loop_missing")
    if missing:
        note = "raw loop not measured: %s" % missing
    if impl == PYTHON_LOOP and figure != "rate":
        fastzk = (suite.get((key, "fastzk")) or {}).get(figure)
        mine = (suite.get((key, impl)) or {}).get(figure)
        if fastzk is not None and mine:
            note += "; fastzk %.2fx this loop's" % (fastzk / float(mine))
    suffix = ".rate_over_raw" if figure == "rate" else ".cpu_over_raw"
    return Row(label, k, f, "", higher_better=figure == "rate",
               ratio=False, judge=False, target=target, note=note,
               kazoo_text="-" if not kazoo else _x(k), fastzk_text=_x(f),
               key=key + _IMPL_KEYS.get(impl, "") + suffix)


def _has_limit(suite, key):
    """Whether case ``key`` measured the raw loop, or says why not."""
    return (key, RAW_LOOP) in suite or bool(
        (suite.get((key, "fastzk")) or {}).get("raw_loop_missing"))


def _limit_rows(suite):
    """The client-side-limit section: each client's throughput and CPU
    per request as multiples of the raw wire loop's, measured in the same
    alternated rounds."""
    rows = []
    sync = "client.sync_get_children"
    if _has_limit(suite, sync):
        rows.append(_limit_row(suite, sync, "sync get_children (/s)", "rate",
                               target=TARGETS["limit.rate"]))
        rows.append(_limit_row(suite, sync, "  CPU per request",
                               "cpu_us_per_op",
                               target=TARGETS["limit.cpu_spin_off"]))
        if (sync, PYTHON_LOOP) in suite:
            rows.append(_limit_row(
                suite, sync, "  the loop in Python, no client logic (/s)",
                "rate", impl=PYTHON_LOOP, kazoo=False))
            rows.append(_limit_row(
                suite, sync, "  CPU per request, the loop in Python",
                "cpu_us_per_op", impl=PYTHON_LOOP, kazoo=False))
        elif (suite.get((sync, "fastzk")) or {}).get("python_loop_missing"):
            rows.append(Row(
                "  the loop in Python", None, None, "", judge=False,
                note="not measured: %s" % suite[(sync, "fastzk")][
                    "python_loop_missing"],
                key=sync + ".python_loop"))
        if (sync, SPIN_ON) in suite:
            rows.append(_limit_row(
                suite, sync, "  fastzk FASTZK_SPIN_US=200 (/s)", "rate",
                impl=SPIN_ON, kazoo=False, target=TARGETS["limit.rate"]))
            rows.append(_limit_row(
                suite, sync, "  CPU per request, FASTZK_SPIN_US=200",
                "cpu_us_per_op", impl=SPIN_ON, kazoo=False))
    pipelined = "client.pipelined_get_children"
    if _has_limit(suite, pipelined):
        rows.append(_limit_row(suite, pipelined, "2,000 pipelined (/s)",
                               "rate", target=TARGETS["limit.rate"]))
        rows.append(_limit_row(suite, pipelined, "  CPU per request",
                               "cpu_us_per_op"))
        if (pipelined, UNBATCHED) in suite:
            rows.append(_limit_row(
                suite, pipelined, "  fastzk reply_batching=0 (/s)", "rate",
                impl=UNBATCHED, kazoo=False))
            rows.append(_limit_row(
                suite, pipelined, "  CPU per request, reply_batching=0",
                "cpu_us_per_op", impl=UNBATCHED, kazoo=False))
    lock = "lock.failed_attempt"
    if _has_limit(suite, lock):
        rows.append(_limit_row(suite, lock,
                               "failed non-blocking acquires (/s)", "rate",
                               target=TARGETS["limit.rate"]))
        rows.append(_limit_row(suite, lock, "  CPU per attempt",
                               "cpu_us_per_op"))
    return rows


def _spin_on_rows(suite, key):
    """fastzk with the opt-in spin (``FASTZK_SPIN_US=200``) beside kazoo
    in the same rounds: throughput and CPU per request, or why it was not
    measured."""
    on = suite.get((key, SPIN_ON))
    if on is None:
        missing = (suite.get((key, "fastzk")) or {}).get("spin_on_missing")
        if not missing:
            return []
        return [Row("  fastzk, FASTZK_SPIN_US=200", None, None, "/s",
                    key=key + ".spin_on", note="not measured: " + missing)]
    kazoo = suite.get((key, "kazoo")) or {}
    return [Row("  fastzk, FASTZK_SPIN_US=200", kazoo.get("rate"),
                on.get("rate"), "/s", key=key + ".spin_on",
                note="default (no spin): fastzk %s" % (
                    "n/a" if _get(suite, key, "fastzk") is None else
                    "{:,.0f}/s".format(_get(suite, key, "fastzk")))),
            Row("    CPU per request, FASTZK_SPIN_US=200 (us)",
                _cpu_us(kazoo), _cpu_us(on), " us", higher_better=False,
                key=key + ".spin_on.cpu_us")]


#: The TLS cases (fastzk.benchcases.bench_tls): their keys and labels,
#: and the plaintext clients alternated with them on the same server.
TLS_CASES = (
    ("tls.sync_get_children", "sync get_children", "  CPU per request (us)"),
    ("tls.pipelined_get_children", "2,000 pipelined get_children_async",
     "  CPU per request (us)"),
    ("tls.lock_failed_attempt", "failed non-blocking acquires, held lock",
     "  CPU per failed attempt (us)"),
)
PLAIN_PARTNERS = {"kazoo": "kazoo-plain", "fastzk": "fastzk-plain"}


def _tls_ratios(suite, key, figure):
    """fastzk's advantage in ``figure`` ("rate": fastzk/kazoo;
    "cpu_us_per_op": kazoo/fastzk, times less CPU) over TLS and over
    plaintext in the same rounds: ``(tls, plain)``, each None when not
    measured."""
    def advantage(kazoo, fastzk):
        k = (suite.get((key, kazoo)) or {}).get(figure)
        f = (suite.get((key, fastzk)) or {}).get(figure)
        if not k or not f:
            return None
        return f / float(k) if figure == "rate" else k / float(f)
    return (advantage("kazoo", "fastzk"),
            advantage(PLAIN_PARTNERS["kazoo"], PLAIN_PARTNERS["fastzk"]))


def _tls_vs_plain_row(suite, key, figure, label):
    """fastzk's advantage over kazoo over TLS beside the plaintext one
    (``_tls_ratios``); the row's ratio is TLS's over plaintext's, judged
    against ``TARGETS["tls.vs_plain"]``."""
    tls, plain = _tls_ratios(suite, key, figure)
    return Row(label, plain, tls, "", kazoo_text="plain " + _x(plain),
               fastzk_text="TLS " + _x(tls), target=TARGETS["tls.vs_plain"],
               key="%s.%s.vs_plain" % (key, "rate" if figure == "rate"
                                       else "cpu"))


def _tls_cost_note(suite, key):
    """What TLS adds per request for each client: its CPU per request
    over TLS minus over plaintext, same rounds."""
    parts = []
    for impl in IMPLS:
        tls = _cpu_us(suite.get((key, impl)))
        plain = _cpu_us(suite.get((key, PLAIN_PARTNERS[impl])))
        if tls is None or plain is None:
            parts.append("%s n/a" % impl)
        else:
            parts.append("%s %+.1f us (plaintext %.1f us)"
                         % (impl, tls - plain, plain))
    return "TLS adds: " + ", ".join(parts)


def _fmt_rate(rate):
    return "n/a" if rate is None else "{:,.0f}/s".format(rate)


def tls_missing_note(hosts):
    """The note saying why the TLS rows are missing: the server was given
    with ``--hosts`` (``hosts``), or None when the run started its own."""
    if not hosts:
        return None
    from fastzk.benchcases._benchlib import TLS_EXTERNAL_REASON

    return "over TLS: not measured (%s)." % TLS_EXTERNAL_REASON


def _tls_rows(suite):
    """The rows of the TLS section, one block per measured case."""
    rows = []
    for key, label, cpu_label in TLS_CASES:
        if (key, "fastzk") not in suite and (key, "kazoo") not in suite:
            continue
        k = _get(suite, key, "kazoo")
        pk = _get(suite, key, PLAIN_PARTNERS["kazoo"])
        pf = _get(suite, key, PLAIN_PARTNERS["fastzk"])
        rows.append(Row(label, k, _get(suite, key, "fastzk"), "/s", key=key,
                        note="plaintext, same rounds: kazoo %s, fastzk %s" % (
                            _fmt_rate(pk), _fmt_rate(pf))))
        rows.append(_tls_vs_plain_row(suite, key, "rate",
                                      "  fastzk/kazoo, plaintext vs TLS"))
        cpu = Row(cpu_label, _cpu_us(suite.get((key, "kazoo"))),
                  _cpu_us(suite.get((key, "fastzk"))), " us",
                  higher_better=False, key=key + ".cpu_us",
                  note=_tls_cost_note(suite, key))
        rows.append(cpu)
        rows.append(_tls_vs_plain_row(suite, key, "cpu_us_per_op",
                                      "    kazoo/fastzk CPU, plaintext vs TLS"))
    return rows
