"""What the figures were measured on: machine, CPU, load, the versions
of Python, kazoo and fastzk."""

import os
import platform
import subprocess


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _uname_m():
    try:
        return subprocess.run(["uname", "-m"], stdout=subprocess.PIPE,
                              universal_newlines=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return platform.machine()


def _nproc():
    try:
        return int(subprocess.run(["nproc"], stdout=subprocess.PIPE,
                                  universal_newlines=True,
                                  timeout=10).stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return os.cpu_count()


def _load():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def machine_info(zookeeper_version=None):
    """What the figures were measured on."""
    import fastzk
    import kazoo

    try:
        from importlib.metadata import version
        kazoo_version = version("kazoo")
    except Exception:
        kazoo_version = getattr(kazoo, "__version__", None)
    return {
        "machine": _uname_m(),
        "nproc": _nproc(),
        "cpu_model": _cpu_model(),
        "python": "%s %s" % (platform.python_implementation(),
                             platform.python_version()),
        "zookeeper_version": zookeeper_version,
        "kazoo_version": kazoo_version,
        "fastzk_version": fastzk.__version__,
        "fastzk_core": "cython" if fastzk.EXTENSIONS else "python",
        "kernel": platform.release(),
    }
