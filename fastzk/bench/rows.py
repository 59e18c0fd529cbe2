"""The table's rows, section by section, from the suite's results and
the fleet's JSON."""

from fastzk.bench.aiorows import aio_sections
from fastzk.bench.results import Row, _get
from fastzk.bench.sections import (
    _READ_BOUND,
    _c_client_note,
    _cpu_row,
    _limit_rows,
    _spin_on_rows,
    _tls_rows,
)
from fastzk.bench.targets import TARGETS

_CODEC_CASES = (
    "encode getChildren",
    "encode getData",
    "encode create (ephemeral sequential)",
    "encode setData (100 B)",
    "decode getChildren reply (50 names)",
    "decode getData reply (100 B + Stat)",
    "decode setData reply (Stat)",
    "decode create reply",
    "decode watch event",
)


def _fmt_cpu(result):
    value = (result or {}).get("cpu_s_per_1000_attempts")
    return "n/a" if value is None else "%.3f" % value


def _fmt_count(n):
    return "{:,}".format(int(n)) if n is not None else "n/a"


def build_rows(suite, fleet):
    """The table's rows from the suite's results (:func:`suite_results`)
    and the fleet's JSON."""
    rows = []
    sections = []

    def section(title):
        sections.append((len(rows), title))

    # -- codec ---------------------------------------------------------------
    if any(k[0].startswith("codec.") for k in suite):
        section("codec (frames/s; fastzk = compiled core, pure Python in "
                "the note)")
        for case in _CODEC_CASES:
            key = "codec." + case
            k = _get(suite, key, "kazoo")
            f = _get(suite, key, "fastzk")
            p = _get(suite, key, "fastzk-python")
            note = ""
            if p is not None and k:
                note = "pure Python %.1fx" % (p / k)
            rows.append(Row(case, k, f, "", note=note, key=key,
                            target=TARGETS["codec"]))

    # -- client ---------------------------------------------------------------
    if any(k[0].startswith("client.") for k in suite):
        section("client round trips (one local server)")
        for label, key in (("sync get_children", "client.sync_get_children"),
                           ("sync get", "client.sync_get")):
            k = _get(suite, key, "kazoo")
            rows.append(Row(label, k, _get(suite, key, "fastzk"), "/s",
                            target=TARGETS[key], key=key,
                            note=_c_client_note(suite, key, k)))
            if (key, "kazoo") in suite:
                rows.append(_cpu_row(suite, key))
            rows.extend(_spin_on_rows(suite, key))
        rows.append(Row("2,000 pipelined get_children_async",
                        _get(suite, "client.pipelined_get_children", "kazoo"),
                        _get(suite, "client.pipelined_get_children", "fastzk"),
                        "/s", target=TARGETS["client.pipelined_get_children"],
                        key="client.pipelined_get_children"))
        if ("client.pipelined_get_children", "kazoo") in suite:
            rows.append(_cpu_row(suite, "client.pipelined_get_children"))
        mk = suite.get(("client.memory", "kazoo"))
        mf = suite.get(("client.memory", "fastzk"))
        if mk or mf:
            nk = mk and mk.get("requests")
            nf = mf and mf.get("requests")
            label = "client RSS growth, 2nd half of run (MiB)"
            note = "requests: fastzk %s, kazoo %s" % (_fmt_count(nf),
                                                      _fmt_count(nk))
            if nk and nf and nk != nf:
                note += " (kazoo fewer: minutes otherwise)"
            rows.append(Row(label,
                            mk and mk.get("rss_growth_second_half_mib"),
                            mf and mf.get("rss_growth_second_half_mib"),
                            " MiB", higher_better=False, ratio=False,
                            target=TARGETS["client.memory"], note=note,
                            key="client.memory.second_half"))
            rows.append(Row("client RSS growth after warm-up (MiB)",
                            mk and mk.get("rss_growth_mib"),
                            mf and mf.get("rss_growth_mib"), " MiB",
                            higher_better=False, ratio=False,
                            note="RSS at end: kazoo %s, fastzk %s MiB" % (
                                "%.1f" % mk["rss_end_mib"] if mk else "n/a",
                                "%.1f" % mf["rss_end_mib"] if mf else "n/a"),
                            key="client.memory.growth"))
            rows.append(Row("  pipelined rate in that run",
                            mk and mk.get("pipelined_rate"),
                            mf and mf.get("pipelined_rate"), "/s",
                            key="client.memory.rate"))

    # -- lock -------------------------------------------------------------------
    if any(k[0].startswith("lock.") for k in suite):
        section("Lock (kazoo's Lock on kazoo vs fastzk's Lock on fastzk)")
        k = _get(suite, "lock.failed_attempt", "kazoo")
        rows.append(Row("failed non-blocking acquires, held lock (/s)",
                        k, _get(suite, "lock.failed_attempt", "fastzk"), "/s",
                        target=TARGETS["lock.failed_attempt"],
                        key="lock.failed_attempt",
                        note=_c_client_note(suite, "lock.failed_attempt", k,
                                            _READ_BOUND)))
        if ("lock.failed_attempt", "kazoo") in suite:
            rows.append(_cpu_row(suite, "lock.failed_attempt",
                                 "  CPU per failed attempt (us)"))
        rows.append(Row("  server transactions per failed attempt",
                        _get(suite, "lock.failed_attempt", "kazoo",
                             "txns_per_attempt"),
                        _get(suite, "lock.failed_attempt", "fastzk",
                             "txns_per_attempt"), "",
                        higher_better=False,
                        target=TARGETS["lock.failed_attempt.txns"],
                        key="lock.failed_attempt.txns"))
        rows.append(Row("uncontended acquire+release cycles",
                        _get(suite, "lock.uncontended_cycle", "kazoo"),
                        _get(suite, "lock.uncontended_cycle", "fastzk"), "/s",
                        target=TARGETS["lock.uncontended_cycle"],
                        key="lock.uncontended_cycle"))
        rows.append(Row("  server transactions per cycle",
                        _get(suite, "lock.uncontended_cycle", "kazoo",
                             "txns_per_cycle"),
                        _get(suite, "lock.uncontended_cycle", "fastzk",
                             "txns_per_cycle"), "", higher_better=False,
                        key="lock.uncontended_cycle.txns"))

    # -- over TLS ------------------------------------------------------------------
    tls = _tls_rows(suite)
    if tls:
        section("over TLS (client certificates; a plaintext kazoo and "
                "fastzk alternated in the same rounds, same server)")
        rows.extend(tls)

    # -- the client-side limit -------------------------------------------------
    limit = _limit_rows(suite)
    if limit:
        section("client-side limit: figure / the raw wire loop's "
                "(benchmarks/c/raw_rounds.c: one socket, no client logic), "
                "same rounds")
        rows.extend(limit)

    # -- the asyncio client ----------------------------------------------------
    for title, aio_rows in aio_sections(suite):
        section(title)
        rows.extend(aio_rows)

    # -- watches and caches -------------------------------------------------------
    if any(k[0].startswith(("watch.", "cache.")) for k in suite):
        section("watches and TreeCache")
        wk = suite.get(("watch.events", "kazoo")) or {}
        wf = suite.get(("watch.events", "fastzk")) or {}
        ceiling = [x.get("writer_rate") for x in (wk, wf) if x.get("writer_rate")]
        rows.append(Row("change events delivered (/s)", wk.get("rate"),
                        wf.get("rate"), "/s",
                        note=("writer ceiling ~{:,.0f}/s".format(min(ceiling))
                              if ceiling else ""),
                        target=TARGETS["watch.events"],
                        key="watch.events"))
        ck = suite.get(("cache.events", "kazoo")) or {}
        cf = suite.get(("cache.events", "fastzk")) or {}
        ceiling = [x.get("writer_rate") for x in (ck, cf) if x.get("writer_rate")]
        rows.append(Row("TreeCache NODE_UPDATED events", ck.get("rate"),
                        cf.get("rate"), "/s",
                        note=("writer ceiling ~{:,.0f}/s".format(min(ceiling))
                              if ceiling else ""),
                        key="cache.events"))
        sk = suite.get(("cache.start", "kazoo")) or {}
        sf = suite.get(("cache.start", "fastzk")) or {}
        nodes = sk.get("nodes") or sf.get("nodes")
        rows.append(Row("TreeCache start, %s nodes" % _fmt_count(nodes),
                        sk.get("seconds_to_initialized"),
                        sf.get("seconds_to_initialized"), " s",
                        higher_better=False, target=TARGETS["cache.start"],
                        key="cache.start"))
        rk = suite.get(("cache.reconnect", "kazoo")) or {}
        rf = suite.get(("cache.reconnect", "fastzk")) or {}
        rows.append(Row("TreeCache converged after a cut",
                        rk.get("seconds_to_converge"),
                        rf.get("seconds_to_converge"), " s",
                        higher_better=False,
                        note="%s changes made while cut" % _fmt_count(
                            rk.get("changes") or rf.get("changes")),
                        key="cache.reconnect"))
        tk = suite.get(("cache.storm", "kazoo"))
        tf = suite.get(("cache.storm", "fastzk"))
        if tk or tf:
            def text(entry):
                if not entry:
                    return "n/a"
                return "%d of %d" % (entry["not_converged"], entry["runs"])
            rows.append(Row("storm with cuts: runs NOT converged",
                            tk and tk["not_converged"],
                            tf and tf["not_converged"], "",
                            higher_better=False, ratio=False,
                            kazoo_text=text(tk), fastzk_text=text(tf),
                            target=TARGETS["cache.storm"],
                            key="cache.storm"))

    # -- fleet ---------------------------------------------------------------------
    results = (fleet or {}).get("results") or []
    by = {(r["variant"], r["impl"]): r for r in results}
    titles = {
        "plain": "fleet, issue 6 (%s)",
        "cuts": "fleet with connection cuts (%s)",
        "held": "fleet, locks mostly held (%s)",
        "cached": "fleet, locks mostly held, fastzk cached_lock_checks=True "
                  "(%s)",
    }
    for variant in ("plain", "held", "cached", "cuts"):
        k, f = by.get((variant, "kazoo")), by.get((variant, "fastzk"))
        if not (k or f):
            continue
        any_r = k or f
        desc = "%d sessions/%d procs, %d items, %g-%g ms jobs" % (
            any_r["sessions"], any_r["processes"], any_r["items"],
            any_r["job_ms"][0], any_r["job_ms"][1])
        if variant == "cuts":
            desc += ", %d sessions cut" % any_r["sessions_cut"]
        section(titles[variant] % desc)

        def val(r, key):
            return None if r is None else r.get(key)

        def wf(r):
            if r is None:
                return "n/a"
            return "%s/%s" % (_fmt_count(r["won"]), _fmt_count(r["failed"]))

        tag = "fleet.%s." % variant
        rows.append(Row("lock attempts", val(k, "attempts_per_s"),
                        val(f, "attempts_per_s"), "/s",
                        key=tag + "attempts_per_s"))
        rows.append(Row("  attempts won/failed", None, None, ratio=False,
                        kazoo_text=wf(k), fastzk_text=wf(f),
                        key=tag + "won_failed"))
        if variant != "cuts":
            rows.append(Row("attempts per client CPU second",
                            val(k, "attempts_per_cpu_s"),
                            val(f, "attempts_per_cpu_s"), "",
                            target=TARGETS["fleet.attempts_per_cpu_s"],
                            note="CPU s/1000 attempts: %s vs %s" % (
                                _fmt_cpu(k), _fmt_cpu(f)),
                            key=tag + "attempts_per_cpu_s"))
            rows.append(Row("server transactions per attempt",
                            val(k, "txns_per_attempt"),
                            val(f, "txns_per_attempt"), "",
                            higher_better=False,
                            target=TARGETS["fleet.txns_per_attempt"],
                            key=tag + "txns_per_attempt"))
            rows.append(Row("server transactions",
                            val(k, "server_txns_per_s"),
                            val(f, "server_txns_per_s"), "/s",
                            higher_better=False, judge=False,
                            key=tag + "txns_per_s"))
        rows.append(Row("items processed", val(k, "items_processed"),
                        val(f, "items_processed"), "",
                        note="jobs done: %s vs %s" % (
                            _fmt_count(val(k, "jobs")),
                            _fmt_count(val(f, "jobs"))),
                        key=tag + "items_processed"))
        rows.append(Row("mutual-exclusion violations", val(k, "violations"),
                        val(f, "violations"), "", higher_better=False,
                        ratio=False, target=TARGETS["fleet.violations"],
                        key=tag + "violations"))
        note = ""
        if variant == "cuts":
            def cuts_text(r):
                c = (r or {}).get("cuts_made") or {}
                return "%s+%s" % (c.get("plain", "?"), c.get("on_delete", "?"))
            note = ("cuts (all + at a delete): kazoo %s, fastzk %s"
                    % (cuts_text(k), cuts_text(f)))
        rows.append(Row("contender nodes left behind", val(k, "leaked_nodes"),
                        val(f, "leaked_nodes"), "", higher_better=False,
                        ratio=False, target=TARGETS["fleet.leaked_nodes"],
                        note=note, key=tag + "leaked_nodes"))
    return rows, sections
