"""The report: the rows rendered as one text table, and the notes
printed under it."""

from fastzk.bench.aiorows import aio_note
from fastzk.bench.sections import RAW_LOOP


def _fmt_value(v, unit):
    if v is None:
        return "n/a"
    if isinstance(v, float) and (unit in (" s", " MiB", " KiB")
                                 or abs(v) < 10):
        if unit == " KiB":
            return "%.1f" % v
        if unit == " MiB":
            return "%+.1f" % v
        if abs(v) < 10:
            return "%.3f" % v if abs(v) < 1 else "%.2f" % v
    return "{:,.0f}".format(v)


def _fmt_ratio(r, higher_better):
    if r is None:
        return "-"
    if r == 0:
        return "0x"
    if r >= 10 or r <= 0.1:
        text = "%.0fx" % r if r >= 10 else "%.3fx" % r
    else:
        text = "%.2fx" % r
    if not higher_better and 0 < r < 1:
        text += " (%.0fx less)" % (1 / r) if 1 / r >= 10 else \
            " (%.1fx less)" % (1 / r)
    return text


def format_table(rows, sections, notes=()):
    """Render the rows as one text table."""
    head = ("%-46s %13s %13s %19s %12s  %s"
            % ("", "kazoo 2.11", "fastzk", "fastzk/kazoo", "target",
               "verdict"))
    width = len(head) + 12
    lines = [head, "-" * width]
    starts = dict(sections)
    for i, row in enumerate(rows):
        if i in starts:
            if i:
                lines.append("")
            lines.append(starts[i])
        kt = row.kazoo_text or _fmt_value(row.kazoo, row.unit)
        ft = row.fastzk_text or _fmt_value(row.fastzk, row.unit)
        label = "  " + row.label
        if row.unit.strip() in ("/s", "s") and not row.label.endswith(")"):
            label += " (%s)" % row.unit.strip()
        line = "%-46s %13s %13s %19s %12s  %s" % (
            label[:46], kt, ft, _fmt_ratio(row.ratio, row.higher_better),
            row.target.describe() if row.target else "",
            row.verdict() if (row.kazoo is not None or row.fastzk is not None)
            else "")
        if row.note:
            line += "  [%s]" % row.note
        lines.append(line.rstrip())
    lines.append("-" * width)
    for i, note in enumerate(notes):
        lines.append(note)
    return "\n".join(lines)


def _notes(suite, fleet, info, quick):
    notes = []
    if ("watch.events", "kazoo") in suite or ("watch.events", "fastzk") in suite:
        notes.append(
            "change events: fastzk = ONE persistent recursive watch "
            "(add_watch); kazoo 2.11 has no persistent watches, so its best "
            "equivalent is a DataWatch on every node (a get per event "
            "re-arms the one-shot watch).  TreeCache events: both read the "
            "data of every changed node.")
    tk = suite.get(("cache.storm", "kazoo"))
    tf = suite.get(("cache.storm", "fastzk"))
    if tk or tf:
        parts = []
        for name, entry in (("kazoo", tk), ("fastzk", tf)):
            if entry:
                parts.append(
                    "%s did not converge in %d of %d runs (content wrong in "
                    "%d, last event wrong in %d)" % (
                        name, entry["not_converged"], entry["runs"],
                        entry["content_wrong"], entry["last_event_wrong"]))
        text = ("TreeCache storm (random set/delete/create on 100 nodes, "
                "connection cut every 0.3-0.8 s): " + "; ".join(parts) + ".")
        if tk and tk.get("reasons"):
            text += "  kazoo, e.g.: %s." % tk["reasons"][0]
        notes.append(text)
    if fleet and fleet.get("results"):
        notes.append(
            "fleet: the loop of kazoo #732 (get_children, shuffle, a new "
            "non-blocking Lock per item, a job when won, release, delete the "
            "item when its work is done, pause); the job itself does not "
            "write to ZooKeeper, as in the issue.  Each variant runs in "
            "halves, kazoo, fastzk, fastzk, kazoo, added up per client.  "
            "attempts = acquire(blocking=False) calls; transactions = zxid "
            "delta; CPU = user+system of the worker processes.  With 20-50 "
            "ms jobs most "
            "locks are free when tried, so most attempts win and write with "
            "either client; the issue-6 targets assume most attempts meet a "
            "held lock, as in the issue (the 'mostly held' run).")
    if info.get("security"):
        notes.append(
            "the ensemble is reached %s: kazoo and fastzk connect with the "
            "same use_ssl, ca, certfile, keyfile, verify_certs, "
            "check_hostname and sasl_options in every case; ZooKeeper's C "
            "client and the raw wire loop (plaintext only) are not "
            "measured." % info["security"])
    if info.get("tls_missing"):
        notes.append(info["tls_missing"])
    if any(k.startswith("tls.") for k, _ in suite):
        notes.append(
            "over TLS: a server with a TLS port requiring client "
            "certificates (fastzk.testing.certs), started by the suite "
            "beside the run's server; kazoo and fastzk connect with "
            "use_ssl=True, ca, certfile, keyfile, verify_certs=True, and a "
            "plaintext kazoo and fastzk on the same server's plaintext port "
            "alternate with them round by round.  'plaintext vs TLS' rows: "
            "fastzk's advantage without and with TLS (target: TLS's at "
            "least plaintext's); 'TLS adds': CPU per request over TLS minus "
            "over plaintext, same rounds.")
    if any(impl == RAW_LOOP for _, impl in suite):
        notes.append(
            "client-side limit: the raw loop (benchmarks/c/raw_rounds.c) "
            "speaks the wire protocol over one socket with no client logic, "
            "in its own process, alternated round by round with the "
            "clients.  CPU per request = user+system CPU of the client's "
            "process (getrusage RUSAGE_SELF) over its rounds, median round: "
            "the C programs measure themselves; kazoo and fastzk are "
            "measured in the benchmark's process around each round, all "
            "threads (kazoo reads and writes in a thread of its own).  "
            "fastzk does not busy-poll by default; FASTZK_SPIN_US=200: a "
            "second fastzk client made with the opt-in spin, in the same "
            "rounds.  The raw loop reads every reply as it arrives; fastzk "
            "batches the replies of a pipelined burst by default "
            "(reply_batching=0.001 s), and reply_batching=0 is a fastzk "
            "client without it, in the same pipelined rounds.")
    if aio_note(suite):
        notes.append(aio_note(suite))
    notes.append(
        "Ratios are fastzk/kazoo from one run on a shared machine "
        "(load average %s at start, %s at end); absolute figures drift up "
        "to 2x between runs.%s" % (
            info.get("load_start"), info.get("load_end"),
            " QUICK run: small counts, smoke test only." if quick else ""))
    return ["%d. %s" % (i + 1, n) for i, n in enumerate(notes)]
