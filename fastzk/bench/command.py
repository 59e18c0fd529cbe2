"""``fastzk bench``'s command line: its options, the checks before a
run, and the run itself from server to table and JSON."""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

from fastzk.bench.machine import _load, machine_info
from fastzk.bench.plot import write_plot
from fastzk.bench.results import suite_results
from fastzk.bench.rows import build_rows
from fastzk.bench.runner import (
    checkout_benchmarks_dir,
    find_bench_dir,
    run_fleet,
    run_suite,
)
from fastzk.bench.sections import tls_missing_note
from fastzk.bench.server import (
    WARMUP_REQUESTS,
    WARMUP_REQUESTS_QUICK,
    _Server,
    local_zookeeper_problem,
    warm_up,
)
from fastzk.bench.table import _notes, format_table
from fastzk.cli.common import (
    CliError,
    _security_options,
    client_options,
    security_defaults,
)


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastzk bench",
        description="Benchmark fastzk against kazoo 2.11 side by side and "
                    "print one table of ratios.")
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run (about 2 minutes; add "
                             "--no-fleet for 1)")
    parser.add_argument("--hosts", metavar="H",
                        help="measure against this ZooKeeper (e.g. "
                             "127.0.0.1:2181) instead of starting a local "
                             "one")
    parser.add_argument("--json", metavar="FILE",
                        help="write every figure here (default: "
                             "benchmarks/results.json in a source checkout, "
                             "none otherwise)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw the ratios as a bar chart (needs "
                             "matplotlib)")
    parser.add_argument("--bench-dir", metavar="DIR",
                        help="run the benchmark cases in DIR (default: "
                             "the ones installed with fastzk, "
                             "fastzk/benchcases)")
    parser.add_argument("-k", dest="select", metavar="EXPR",
                        help="run only the suite cases matching this pytest "
                             "-k expression")
    parser.add_argument("--no-suite", action="store_true",
                        help="skip the pytest-benchmark suite")
    parser.add_argument("--no-fleet", action="store_true",
                        help="skip the fleet benchmark")
    parser.add_argument("--fleet-variant", action="append",
                        choices=("plain", "cuts", "held", "cached"),
                        help="run only this fleet variant (repeatable)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="measure without warming the server up first "
                             "(see fastzk.bench.warm_up)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 3 when a target is missed")
    # Those of the other commands, for a --hosts reached over TLS or with
    # SASL: both clients of every case are made with them.
    _security_options(parser, True)
    return parser


#: The options that say how to reach --hosts securely, as given.
_SECURITY_GIVEN = ("tls", "ca", "cert", "key", "sasl_user")


def _security(args):
    """The TLS and SASL options of ``args`` as the cases take them
    (:data:`fastzk.benchcases._clients.SECURITY_VARIABLE`), their defaults
    from the environment, or None when --hosts is reached in plaintext
    without SASL.

    :raises CliError: on options given without --hosts (the local server
        speaks plaintext), or options that do not go together.
    """
    if not args.hosts:
        if any(getattr(args, name) for name in _SECURITY_GIVEN):
            raise CliError("the TLS and SASL options are for --hosts: the "
                           "server started here speaks plaintext (its TLS "
                           "rows come from a TLS server of the suite's own)")
        return None
    security_defaults(args, os.environ)
    if not (args.tls or args.sasl_user):
        return None
    security = {name: getattr(args, name) for name in (
        "tls", "ca", "cert", "key", "key_password_env", "verify_certs",
        "check_hostname", "sasl_user")}
    client_options(args, os.environ)  # the checks, before anything starts
    return security


def _default_json():
    checkout = checkout_benchmarks_dir()
    return os.path.join(checkout, "results.json") if checkout else None


def _cannot_run(args):
    """Why this run cannot start (one line), or None."""
    try:
        find_bench_dir(args.bench_dir)
    except RuntimeError as exc:
        return str(exc)
    if not args.no_suite:
        try:
            import pytest_benchmark  # noqa: F401
        except ImportError:
            return ("pytest-benchmark is not installed: pip install "
                    "'fastzk[bench]'")
    if not args.hosts:
        return local_zookeeper_problem()
    return None


def _over(options):
    """`` over TLS``, `` with SASL`` or both, for client ``options``."""
    parts = []
    if options.get("use_ssl"):
        parts.append("over TLS%s" % (" with a client certificate"
                                     if options.get("certfile") else ""))
    if options.get("sasl_options"):
        parts.append("with SASL %s" % options["sasl_options"]["mechanism"])
    return "".join(" " + part for part in parts)


def main(argv=None):
    """Run the benchmarks; returns the process exit status."""
    args = _parser().parse_args(argv)
    started = time.monotonic()

    def log(msg):
        sys.stderr.write("[%5.0fs] %s\n" % (time.monotonic() - started, msg))
        sys.stderr.flush()

    problem = _cannot_run(args)
    if problem:
        log("error: %s" % problem)
        return 2
    try:
        security = _security(args)
    except CliError as exc:
        log("error: %s" % exc)
        return 2
    options = client_options(args, os.environ) if security else {}
    bench_dir = find_bench_dir(args.bench_dir)
    json_path = args.json or _default_json()
    server = _Server(args.hosts, options)
    log("starting ZooKeeper ..." if not args.hosts
        else "using ZooKeeper at %s%s" % (args.hosts, _over(options)))
    try:
        server.start(log)
    except Exception as exc:
        log("error: %s" % exc if args.hosts
            else "error: could not start ZooKeeper: %s" % exc)
        return 2
    status = 0
    info = {}
    suite_data = fleet_data = None
    try:
        log("ZooKeeper %s at %s" % (server.version or "(unknown version)",
                                    server.hosts))
        info = machine_info(server.version)
        if options:
            info["security"] = _over(options).strip()
        if not args.no_suite and tls_missing_note(args.hosts):
            info["tls_missing"] = tls_missing_note(args.hosts)
        if not args.no_warmup:
            log("warming the server up ...")
            warm_up(server.hosts, WARMUP_REQUESTS_QUICK if args.quick
                    else WARMUP_REQUESTS, log=log, options=options)
        info["load_start"] = ", ".join("%.1f" % x for x in _load() or ())
        workdir = tempfile.mkdtemp(prefix="fastzk-bench-")
        if not args.no_suite:
            log("pytest-benchmark suite (%s) ..." % (
                "quick" if args.quick else "full"))
            rc, suite_data, log_path = run_suite(
                bench_dir, server.hosts, args.quick, workdir, log,
                args.select, local=server.owned is not None,
                security=security)
            if rc != 0:
                status = 1
                log("suite FAILED (exit %d); pytest output: %s" % (rc, log_path))
                try:
                    with open(log_path) as f:
                        tail = f.read().splitlines()[-40:]
                    sys.stderr.write("\n".join(tail) + "\n")
                except OSError:
                    pass
            else:
                log("suite done")
        if not args.no_fleet:
            log("fleet benchmark ...")
            rc, fleet_data = run_fleet(bench_dir, server.hosts, args.quick,
                                       workdir, log, args.fleet_variant,
                                       security)
            if rc != 0:
                status = 1
                log("fleet benchmark FAILED (exit %d)" % rc)
            else:
                log("fleet done")
        info["load_end"] = ", ".join("%.1f" % x for x in _load() or ())
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        server.stop()

    suite = suite_results(suite_data)
    rows, sections = build_rows(suite, fleet_data)
    notes = _notes(suite, fleet_data, info, args.quick)
    header = ("fastzk %s (%s core) vs kazoo %s -- ZooKeeper %s -- %s, %s "
              "CPUs (%s), %s -- %s" % (
                  info.get("fastzk_version"), info.get("fastzk_core"),
                  info.get("kazoo_version"), info.get("zookeeper_version"),
                  info.get("machine"), info.get("nproc"),
                  info.get("cpu_model"), info.get("python"),
                  datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))
    print()
    print(header)
    print(format_table(rows, sections, notes))

    missed = [r.label for r in rows
              if r.target and r.target.met(r.kazoo, r.fastzk) is False]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "quick": bool(args.quick),
        "server": ("external %s%s" % (args.hosts, _over(options))
                   if args.hosts else "local"),
        "machine": info,
        "seconds": time.monotonic() - started,
        "rows": [r.as_dict() for r in rows],
        "targets_missed": missed,
        "notes": notes,
        "suite": [
            dict(case=case, impl=impl, **{k: v for k, v in entry.items()})
            for (case, impl), entry in sorted(suite.items())
        ],
        "fleet": fleet_data,
        "status": status,
    }
    if json_path is None:
        log("figures not kept: pass --json FILE to write them all")
    else:
        try:
            with open(json_path, "w") as f:
                json.dump(result, f, indent=2, default=str)
            log("results written to %s" % json_path)
        except OSError as exc:
            log("error: cannot write %s: %s" % (json_path, exc))
            status = status or 1
    if args.plot:
        problem = write_plot(rows, args.plot, header)
        if problem:
            log(problem)
        else:
            log("plot written to %s" % args.plot)
    if status == 0 and args.strict and missed:
        status = 3
    return status
