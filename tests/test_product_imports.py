"""Product code never imports fastzk.testing: each module of the package
outside fastzk.testing (and the benchmark cases, tests by nature) is
imported alone in a fresh interpreter, which must end with no
fastzk.testing module loaded."""

import os
import pkgutil
import subprocess
import sys

import pytest

import fastzk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Modules the check must cover whatever the walk finds.
REQUIRED = {
    "fastzk", "fastzk.client", "fastzk.lock", "fastzk.cache",
    "fastzk.watchers", "fastzk.errors", "fastzk.recipes.locknames",
    "fastzk.fourletter", "fastzk.cli", "fastzk.cli.common",
    "fastzk.cli.bench", "fastzk.cli.lock", "fastzk.cli.watch",
    "fastzk.cli.locks", "fastzk.bench",
    # the rooms' packages and their parts
    "fastzk.recipes", "fastzk.recipes.lockattempt",
    "fastzk.recipes.lockcalls", "fastzk.recipes.lockpaths",
    "fastzk.recipes.cleanup", "fastzk.recipes.watchrelease",
    "fastzk.recipes.cacheops", "fastzk.recipes.cachereader",
    "fastzk.recipes.cachemirror",
    "fastzk.kazooface", "fastzk.kazooface.base", "fastzk.kazooface.data",
    "fastzk.kazooface.recipes", "fastzk.kazooface.session",
    "fastzk.kazooface.watches", "fastzk.kazooface.fastpath",
    "fastzk.drivers", "fastzk.drivers.engine", "fastzk.drivers.dispatch",
    "fastzk.drivers.spin",
    "fastzk.protocol", "fastzk.protocol.watches",
    "fastzk.protocol.childview", "fastzk.protocol.paths",
    "fastzk.aio",
}

_NOT_PRODUCT = ("fastzk.testing", "fastzk.benchcases", "fastzk._ccodec")


def product_modules():
    names = {"fastzk"}
    for info in pkgutil.walk_packages(fastzk.__path__, "fastzk."):
        if not info.name.startswith(_NOT_PRODUCT):
            names.add(info.name)
    return sorted(names)


def test_every_required_module_is_checked():
    assert REQUIRED <= set(product_modules())


_PROBE = """\
import importlib, sys
importlib.import_module(sys.argv[1])
print(" ".join(sorted(m for m in sys.modules
                      if m == "fastzk.testing"
                      or m.startswith("fastzk.testing."))))
"""


@pytest.mark.parametrize("module", product_modules())
def test_product_module_does_not_import_testing(module):
    result = subprocess.run([sys.executable, "-c", _PROBE, module],
                            cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], (
        "importing %s loads %s" % (module, result.stdout.strip()))


def test_four_letter_word_is_still_in_zkserver():
    from fastzk.fourletter import four_letter_word
    from fastzk.testing import zkserver

    assert zkserver.four_letter_word is four_letter_word
