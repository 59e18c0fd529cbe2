"""Every Python snippet in README.md runs as written, on a real server.

The snippets read like one session at a prompt: they run in order in one
namespace, each after the ones above it.  The only changes made to them
are addresses and files: ``127.0.0.1:2181`` becomes the test server's,
with a fresh chroot, so the nodes they create are removed afterwards, and
the TLS example's server and certificate files become a TLS and SASL
server's started for the test, with certificates made for it.
"""

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "README.md")
DEFAULT_HOSTS = "127.0.0.1:2181"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)


def python_snippets(text):
    """The README's ```python blocks, in order, as (line number, code)."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1))
            for m in _PYTHON_BLOCK.finditer(text)]


def test_snippets_are_found():
    with open(README, encoding="utf-8") as f:
        snippets = python_snippets(f.read())
    assert len(snippets) >= 5
    assert all(DEFAULT_HOSTS not in code or "Client(" in code
               for _, code in snippets)


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory):
    """A ZooKeeper server with TLS (client certificates required) and SASL
    (alice/secret), and the files of the README's TLS example."""
    from fastzk.testing.certs import make_tls_files
    from fastzk.testing.zkserver import ServerSasl, ServerTls, ZooKeeperServer

    files = make_tls_files(str(tmp_path_factory.mktemp("readme-tls")))
    server = ZooKeeperServer(
        tmp_path_factory.mktemp("readme-zk"),
        tls=ServerTls(files.server_pem, files.ca, client_auth="need"),
        sasl=ServerSasl({"alice": "secret"}))
    try:
        server.start(timeout=60)
    except Exception as exc:
        server.stop()
        pytest.fail("could not start the TLS and SASL server: %s" % exc,
                    pytrace=False)
    yield server, {
        "zk1.example.com:2281": "localhost:%d" % server.secure_port,
        "/etc/zookeeper/ca.pem": files.ca,
        "/etc/zookeeper/client.pem": files.client_cert,
        "/etc/zookeeper/client-key.pem": files.client_key,
    }
    server.stop()


def test_readme_snippets_run(zk_hosts, zk_admin, zk_chroot, secure_server):
    _, replacements = secure_server
    replacements = dict(replacements, **{DEFAULT_HOSTS: zk_hosts})
    with open(README, encoding="utf-8") as f:
        snippets = python_snippets(f.read())
    from fastzk import KazooClient

    namespace = {"__name__": "readme"}
    clients = []
    try:
        for line, code in snippets:
            for old, new in replacements.items():
                code = code.replace(old, new)
            try:
                exec(compile(code, "README.md:%d" % line, "exec"), namespace)
            except Exception as exc:
                pytest.fail("README.md snippet at line %d failed: %r"
                            % (line, exc))
            finally:
                clients += [v for v in namespace.values()
                            if isinstance(v, KazooClient) and v not in clients]
    finally:
        for client in clients:
            client.stop()
            client.close()
    # What the snippets did is on the server, and their locks left no node.
    assert zk_admin.get(zk_chroot + "/app/config")[0] == b"v3"
    for lock in ("/locks/item-42", "/locks/report", "/locks/async-item-42",
                 "/locks/async-report"):
        assert zk_admin.get_children(zk_chroot + lock) == []


_IMPORT_ROW = re.compile(r"^\| `(fastzk[\w.]*)` \| (.*) \|$", re.M)


def test_public_import_paths_exist():
    """The README's table of import paths names modules and names that
    are there."""
    import importlib

    with open(README, encoding="utf-8") as f:
        rows = _IMPORT_ROW.findall(f.read())
    assert len(rows) >= 8
    for module_name, what in rows:
        module = importlib.import_module(module_name)
        names = re.findall(r"`(\w+)`", what.split(";")[0])
        for name in names:
            assert hasattr(module, name), (module_name, name)
