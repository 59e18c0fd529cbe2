"""``fastzk bench``: run the benchmarks of :mod:`fastzk.bench`."""

import argparse
from typing import List, Optional, Sequence

from fastzk.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    VALUE_OPTIONS,
    Parser,
    describe,
)


#: The TLS and SASL options of :func:`fastzk.cli.common.connection_options`
#: that ``fastzk bench`` takes too: those taking a value, and the flags.
SECURITY_VALUE_OPTIONS = ("--ca", "--cert", "--key", "--key-password-env",
                          "--sasl-user")
SECURITY_FLAGS = ("--tls", "--no-verify", "--check-hostname")


def security_tokens(argv: Sequence[str]) -> List[str]:
    """The TLS and SASL options in ``argv`` (the global options before
    ``bench``), with their values, in their order: what
    ``fastzk --ca F bench`` hands the benchmarks."""
    tokens: List[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in SECURITY_VALUE_OPTIONS and i + 1 < len(argv):
            tokens += argv[i:i + 2]
            i += 2
            continue
        if arg in SECURITY_FLAGS or arg.split("=", 1)[0] in \
                SECURITY_VALUE_OPTIONS:
            tokens.append(arg)
        elif arg in VALUE_OPTIONS:
            i += 1  # another option's value
        i += 1
    return tokens


def add_parser(subparsers: "argparse._SubParsersAction[Parser]") -> None:
    """Add ``bench`` to ``subparsers``: its arguments are the benchmarks'
    own, kept raw by :func:`fastzk.cli.parse_args`."""
    bench = subparsers.add_parser(
        "bench", add_help=False,
        help="run the benchmarks (fastzk bench --help for their options)",
        description="Run fastzk's benchmarks; every argument goes to them.")
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    """Delegate to :func:`fastzk.bench.main`, imported only now."""
    import importlib

    try:
        bench = importlib.import_module("fastzk.bench")
    except ImportError as exc:
        if getattr(exc, "name", None) in ("fastzk.bench", "fastzk"):
            raise CliError("bench: the benchmarks (fastzk.bench) are not "
                           "available in this installation", EXIT_USAGE)
        raise CliError("bench: cannot load the benchmarks: %s"
                       % describe(exc), EXIT_USAGE)
    bench_args: List[str] = list(args.bench_args)
    # `fastzk --hosts H bench`
    hosts: Optional[str] = getattr(args, "bench_hosts", None)
    if hosts and not any(a == "--hosts" or a.startswith("--hosts=")
                         for a in bench_args):
        bench_args = ["--hosts", hosts] + bench_args
    # `fastzk --ca F --cert C --key K bench`: the benchmarks' own copies,
    # given after them, win.
    bench_args = list(getattr(args, "bench_security", None) or []) + \
        bench_args
    status = bench.main(bench_args)
    if status is None or status is True:
        return EXIT_OK
    if status is False:
        return EXIT_ERROR
    return int(status)


