"""The asyncio client over TLS and with SASL, on real secure servers."""

import asyncio
import os
import sys
import time
import uuid

import pytest
from kazoo.exceptions import AuthFailedError, SessionClosedRequireSaslError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_acl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _aio import client, run  # noqa: E402
from _secure import (  # noqa: E402, F401 (fixtures)
    SASL_PASSWORD,
    SASL_USER,
    secure_servers,
    tls_files,
)
from fastzk.aio import AsyncClient  # noqa: E402
from fastzk.aio.wire import Wire  # noqa: E402

ALICE = {"mechanism": "DIGEST-MD5", "username": SASL_USER,
         "password": SASL_PASSWORD}


def _tls(files, **overrides):
    kwargs = dict(use_ssl=True, ca=files.ca, certfile=files.client_cert,
                  keyfile=files.client_key)
    kwargs.update(overrides)
    return {k: v for k, v in kwargs.items() if v is not None}


@pytest.fixture
def node():
    return "/aio-tls-" + uuid.uuid4().hex


@run
async def test_reply_batching_over_tls(secure_servers, tls_files, node,
                                       monkeypatch):
    # Pausing and resuming a TLS transport (asyncio's SSL protocol, or
    # uvloop's) loses and reorders nothing.
    resumes = []
    resume = Wire._resume
    monkeypatch.setattr(Wire, "_resume",
                        lambda wire: (resumes.append(wire), resume(wire)))
    zk = await client(secure_servers.need.secure_address, **_tls(tls_files))
    try:
        await asyncio.gather(*(zk.create("%s/n%d" % (node, i), b"%d" % i,
                                         makepath=True) for i in range(20)))
        for _ in range(5):
            replies = await asyncio.gather(*(
                zk.get_async("%s/n%d" % (node, i % 20)) for i in range(2000)))
            assert [data for data, _ in replies] == [
                b"%d" % (i % 20) for i in range(2000)]
            if resumes:
                break
        assert resumes, "no read of five bursts over TLS was batched"
        await zk.delete(node, recursive=True)
    finally:
        await zk.stop()


@run
async def test_crud_pipelining_and_lock_over_tls(secure_servers, tls_files,
                                                node):
    zk = await client(secure_servers.need.secure_address, **_tls(tls_files))
    other = await client(secure_servers.need.secure_address,
                         **_tls(tls_files))
    try:
        await zk.create(node, b"over tls")
        assert (await zk.get(node))[0] == b"over tls"
        replies = await asyncio.gather(*(zk.get_children(node)
                                         for _ in range(500)))
        assert replies == [[]] * 500
        lock = zk.Lock(node + "/lock")
        assert await lock.acquire()
        assert not await other.Lock(node + "/lock").acquire(blocking=False)
        await lock.release()
        await zk.delete(node, recursive=True)
    finally:
        await zk.stop()
        await other.stop()


@run
async def test_sasl_over_tls13_with_hostname_check(secure_servers, tls_files,
                                                   node):
    # tls13 requires SASL: without it every request is refused.
    zk = await client(secure_servers.tls13.secure_address,
                      sasl_options=dict(ALICE),
                      **_tls(tls_files, check_hostname=True))
    try:
        acl = [make_acl("sasl", SASL_USER, all=True)]
        await zk.create(node, b"alice", acl=acl)
        assert (await zk.get(node))[0] == b"alice"
        await zk.delete(node)
    finally:
        await zk.stop()


@run
async def test_wrong_sasl_password_fails_start_at_once(secure_servers,
                                                       tls_files):
    zk = AsyncClient(secure_servers.tls13.secure_address, timeout=10.0,
                     sasl_options=dict(ALICE, password="wrong"),
                     **_tls(tls_files))
    started = time.monotonic()
    with pytest.raises(SessionClosedRequireSaslError, match="DIGEST-MD5"):
        await zk.start(timeout=8.0)
    assert time.monotonic() - started < 4.0


@run
async def test_expired_certificate_fails_start_at_once(secure_servers,
                                                       tls_files):
    zk = AsyncClient(secure_servers.expired.secure_address, timeout=10.0,
                     **_tls(tls_files))
    started = time.monotonic()
    with pytest.raises(KazooTimeoutError) as info:
        await zk.start(timeout=8.0)
    assert time.monotonic() - started < 4.0
    assert isinstance(info.value, AuthFailedError)
    assert "did not verify" in str(info.value)
