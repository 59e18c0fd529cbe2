"""One version number: pyproject.toml's, as the package and the CLI report it."""

import os
import re
import subprocess
import sys

import fastzk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject_version():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        return re.search(r'^version = "([^"]+)"$', f.read(), re.M).group(1)


def test_package_version_is_pyprojects():
    assert fastzk.__version__ == _pyproject_version()


def test_cli_version_is_pyprojects():
    out = subprocess.run([sys.executable, "-m", "fastzk", "--version"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["fastzk", _pyproject_version()]


def test_installed_metadata_is_used_outside_a_checkout(tmp_path, monkeypatch):
    from fastzk import _version

    monkeypatch.setattr(_version, "_PYPROJECT", str(tmp_path / "missing"))
    monkeypatch.setattr(_version.metadata, "version",
                        lambda name: "9.8.7" if name == "fastzk" else None)
    assert _version.version() == "9.8.7"
