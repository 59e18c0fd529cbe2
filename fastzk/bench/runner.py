"""Running the two halves of a benchmark run, the pytest-benchmark suite
and the fleet benchmark, each in a subprocess importing this fastzk."""

import importlib.util
import json
import os
import subprocess
import sys

#: The directory of this ``fastzk`` package.
_FASTZK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _package_root():
    """The directory that holds this ``fastzk`` package: a source
    checkout's root, or ``site-packages``."""
    return os.path.dirname(_FASTZK_DIR)


def cases_dir():
    """The directory of the shipped benchmark cases
    (:mod:`fastzk.benchcases`)."""
    return os.path.join(_FASTZK_DIR, "benchcases")


def checkout_benchmarks_dir():
    """``benchmarks/`` of the source checkout this fastzk runs from, or
    None for an installed package."""
    path = os.path.join(_package_root(), "benchmarks")
    return path if os.path.isfile(os.path.join(path, "run.py")) else None


def find_bench_dir(explicit=None):
    """The benchmark cases: ``explicit`` (``--bench-dir``), else the ones
    shipped in :mod:`fastzk.benchcases`."""
    path = os.path.abspath(explicit or cases_dir())
    for name in ("conftest.py", "fleet.py"):
        if not os.path.isfile(os.path.join(path, name)):
            raise RuntimeError("benchmark files not found: no %s in %s"
                               % (name, path))
    return path


def _env(hosts, quick, local=False, security=None):
    from fastzk.benchcases._clients import SECURITY_VARIABLE

    env = dict(os.environ)
    env["FASTZK_BENCH_HOSTS"] = hosts
    # The TLS and SASL options of --hosts, for every client of the run.
    if security:
        env[SECURITY_VARIABLE] = json.dumps(security)
    else:
        env.pop(SECURITY_VARIABLE, None)
    # A server started here: the TLS cases may start one of their own.
    if local:
        env["FASTZK_BENCH_LOCAL_SERVER"] = "1"
    else:
        env.pop("FASTZK_BENCH_LOCAL_SERVER", None)
    env["FASTZK_BENCH_PROGRESS"] = "1"
    if quick:
        env["FASTZK_BENCH_QUICK"] = "1"
    else:
        env.pop("FASTZK_BENCH_QUICK", None)
    # The benchmark subprocesses import this very fastzk.
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                if env.get("PYTHONPATH") else "")
    return env


def _have_pytest_timeout():
    return importlib.util.find_spec("pytest_timeout") is not None


def suite_argv(bench_dir, quick, workdir, out_json, select=None):
    """The pytest command line of the suite.

    pytest is given a configuration file of its own (an empty one written
    in ``workdir``) and ``bench_dir`` as its root, so that no pytest
    configuration of the directory the command runs in, or above the
    installed package, applies to the run.
    """
    ini = os.path.join(workdir, "pytest.ini")
    with open(ini, "w") as f:
        f.write("[pytest]\n")
    argv = [
        sys.executable, "-m", "pytest", bench_dir,
        "-c", ini, "--rootdir", bench_dir, "--confcutdir", bench_dir,
        "-q", "-p", "no:cacheprovider",
        "--benchmark-json=" + out_json,
        "--benchmark-sort=name",
        "--benchmark-max-time=%s" % ("0.1" if quick else "0.5"),
        "--benchmark-min-rounds=%d" % (3 if quick else 5),
    ]
    if _have_pytest_timeout():
        argv += ["-o", "timeout=1800"]
    if select:
        argv += ["-k", select]
    return argv


def run_suite(bench_dir, hosts, quick, workdir, log, select=None,
              local=False, security=None):
    """Run the pytest-benchmark suite; returns (returncode, its JSON or
    None, path of its log).  ``local``: ``hosts`` is a server started
    here, not one given with ``--hosts``; ``security``: the TLS and SASL
    options of ``hosts`` (see ``fastzk.benchcases._clients``)."""
    out_json = os.path.join(workdir, "suite.json")
    log_path = os.path.join(workdir, "pytest.log")
    with open(log_path, "w") as logf:
        proc = subprocess.run(
            suite_argv(bench_dir, quick, workdir, out_json, select),
            stdout=logf, stderr=None, env=_env(hosts, quick, local, security),
            cwd=workdir)
    data = None
    if os.path.exists(out_json):
        with open(out_json) as f:
            data = json.load(f)
    return proc.returncode, data, log_path


def run_fleet(bench_dir, hosts, quick, workdir, log, variants=None,
              security=None):
    """Run the fleet benchmark; returns (returncode, its JSON or None)."""
    out_json = os.path.join(workdir, "fleet.json")
    argv = [sys.executable, os.path.join(bench_dir, "fleet.py"),
            "--hosts", hosts, "--json", out_json]
    if quick:
        argv.append("--quick")
    for variant in variants or ():
        argv += ["--variant", variant]
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=None,
                          env=_env(hosts, quick, security=security),
                          cwd=workdir)
    data = None
    if os.path.exists(out_json):
        with open(out_json) as f:
            data = json.load(f)
    return proc.returncode, data


# ---------------------------------------------------------------------------
# From raw results to rows
