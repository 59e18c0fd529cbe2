"""The type stub of the compiled codec, fastzk/_ccodec.pyi, against the
modules it describes.

The stub is written by hand: when the codec gains, loses or renames a
public name or a parameter, these tests fail until the stub follows.  The
pure-Python twin (:mod:`fastzk._codec`) is checked always, the compiled
module when it is built.
"""

import ast
import importlib
import inspect
import os

import pytest

import fastzk
from fastzk import _codec

STUB = os.path.join(os.path.dirname(fastzk.__file__), "_ccodec.pyi")


def _stub_tree():
    with open(STUB, encoding="utf-8") as f:
        return ast.parse(f.read(), STUB)


def _stub_all(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__"
                for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    raise AssertionError("the stub has no __all__")


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _stub_defined(tree):
    """Public names the stub defines at module level (imports aside)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets
                         if isinstance(t, ast.Name))
    names.discard("__all__")
    return _public(names)


def _stub_functions(tree):
    """name -> parameter names, for the stub's module-level functions."""
    return {node.name: [a.arg for a in node.args.args]
            for node in tree.body if isinstance(node, ast.FunctionDef)}


def _stub_class_members(tree, name):
    """Public members and method parameters of the stub's class ``name``."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            members, methods = set(), {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                    methods[item.name] = [a.arg for a in item.args.args]
                elif isinstance(item, ast.AnnAssign):
                    members.add(item.target.id)
            return _public(members), methods
    raise AssertionError("the stub has no class %s" % name)


@pytest.fixture(params=["python", "compiled"])
def module(request):
    if request.param == "python":
        return _codec
    try:
        return importlib.import_module("fastzk._ccodec")
    except ImportError:
        pytest.skip("the compiled codec is not built")


def test_stub_all_is_the_module_all(module):
    assert _stub_all(_stub_tree()) == list(module.__all__)


def test_stub_defines_exactly_the_exported_names(module):
    tree = _stub_tree()
    assert _stub_defined(tree) == set(module.__all__)


def test_stub_functions_have_the_module_parameters(module):
    for name, params in _stub_functions(_stub_tree()).items():
        signature = inspect.signature(getattr(module, name))
        assert params == list(signature.parameters), name


def test_stub_frame_reader_members(module):
    members, methods = _stub_class_members(_stub_tree(), "FrameReader")
    assert members == _public(dir(module.FrameReader))
    for name, params in methods.items():
        if name == "spin_off_cpu_ns":
            continue  # a property
        if name == "__init__":
            # A compiled class's __init__ has no signature to inspect: the
            # stub's parameter names must work as keywords.
            assert params == ["self", "max_frame"]
            assert module.FrameReader(max_frame=1024).max_frame == 1024
            continue
        signature = inspect.signature(getattr(module.FrameReader, name))
        assert params == list(signature.parameters), name

