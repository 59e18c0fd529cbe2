"""fastzk.protocol.paths.server_path against kazoo's _prefix_root, on every kind of
path and chroot."""

import itertools

import pytest
from kazoo.protocol.paths import _prefix_root

from fastzk.protocol.paths import parent_to_make, server_path

PATHS = ["/", "", "a", "/a", "/a/", "//a", "/a//b", "/a/b", "a/b/", "/a.b",
         "/.a", "/a/.b", "/é/ü", "/a/b/c/d"]
CHROOTS = ["", "/app", "/app/x"]


@pytest.mark.parametrize("chroot,path", list(itertools.product(CHROOTS, PATHS)))
def test_server_path_is_kazoos(chroot, path):
    assert server_path(chroot, path) == _prefix_root(chroot, path)


@pytest.mark.parametrize("path", ["/a/..", "/a/./b", "/../a"])
def test_relative_components_are_refused_as_kazoo(path):
    with pytest.raises(ValueError):
        _prefix_root("", path)
    with pytest.raises(ValueError):
        server_path("", path)


@pytest.mark.parametrize("path,sequence,parent", [
    ("/a/b", False, "/a"),
    ("/a/b", True, "/a"),
    ("/a/b/", True, "/a/b"),     # the sequence number is appended to "b/"
    ("/a/b-", True, "/a"),
    ("/a", False, "/"),
    ("/a/b/", False, "/a/b"),
])
def test_parent_to_make(path, sequence, parent):
    assert parent_to_make(path, sequence) == parent
