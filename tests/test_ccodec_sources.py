"""The compiled codec's source files and the build files that name them.

``src/_ccodec.pyx`` includes its bodies from ``src/codec/*.pxi``.  Each of
those files must be included exactly once, be a ``depends`` of the
extension in setup.py (so that editing it rebuilds the module), and be
shipped by MANIFEST.in (so that the sdist compiles).  These tests read the
source tree, which the sdist carries too.
"""

import ast
import fnmatch
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYX = os.path.join(ROOT, "src", "_ccodec.pyx")
CODEC = os.path.join(ROOT, "src", "codec")


def _read(path):
    with open(path) as f:
        return f.read()


def pxi_files():
    """The include files on disk, as paths relative to the root."""
    return sorted("src/codec/" + name for name in os.listdir(CODEC)
                  if name.endswith(".pxi"))


def included():
    """The files ``src/_ccodec.pyx`` includes, in order, relative to the root."""
    return ["src/" + name for name in
            re.findall(r'^include "([^"]+)"$', _read(PYX), re.M)]


def setup_depends():
    """The string literals of setup.py's ``CCODEC_INCLUDES`` list."""
    tree = ast.parse(_read(os.path.join(ROOT, "setup.py")))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "CCODEC_INCLUDES"):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no CCODEC_INCLUDES")


def manifest_includes():
    """The patterns of MANIFEST.in's ``include`` lines."""
    patterns = []
    for line in _read(os.path.join(ROOT, "MANIFEST.in")).splitlines():
        words = line.split()
        if words and words[0] == "include":
            patterns.extend(words[1:])
    return patterns


def test_the_module_includes_every_pxi_once():
    names = included()
    assert len(names) == len(set(names)), names
    assert sorted(names) == pxi_files()
    assert {"src/codec/primitives.pxi", "src/codec/encoders.pxi",
            "src/codec/decoders.pxi", "src/codec/sending.pxi",
            "src/codec/reader.pxi"} <= set(names)


def test_every_pxi_is_a_dependency_of_the_extension():
    assert sorted(setup_depends()) == pxi_files()


def test_every_pxi_is_in_the_manifest():
    patterns = manifest_includes()
    for path in pxi_files():
        assert any(fnmatch.fnmatch(path, p) for p in patterns), path
