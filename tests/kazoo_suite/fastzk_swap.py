"""pytest plugin: run kazoo's own test suite with fastzk's client swapped in.

Loaded with ``-p fastzk_swap`` before kazoo's test modules are imported, so
``kazoo.client.KazooClient`` and the harness's client are fastzk's.
"""

import kazoo.client
import kazoo.testing.harness

import fastzk

kazoo.client.KazooClient = fastzk.KazooClient
kazoo.testing.harness.KazooClient = fastzk.KazooClient


def pytest_report_header(config):
    return "kazoo suite with fastzk.KazooClient (compiled core: %s)" % (
        fastzk.EXTENSIONS,)
