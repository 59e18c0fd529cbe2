"""The ``fastzk`` command line over TLS and with SASL, run as a subprocess
against a real server whose secure client port needs a client certificate
and which knows one SASL user."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from fastzk import KazooClient
from fastzk.testing.certs import make_tls_files
from fastzk.testing.zkserver import ServerSasl, ServerTls, ZooKeeperServer

from test_cli import LineReader, _env, assert_one_line_error, fastzk_cmd

USER = "alice"
PASSWORD = "secret"
#: The variables fastzk reads; cleared so that the tests' environment
#: does not leak into the commands.
FASTZK_VARIABLES = ("ZOOKEEPER_TLS", "ZOOKEEPER_TLS_CA", "ZOOKEEPER_TLS_CERT",
                    "ZOOKEEPER_TLS_KEY", "ZOOKEEPER_SASL_USER",
                    "FASTZK_KEY_PASSWORD", "FASTZK_SASL_PASSWORD")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(str(tmp_path_factory.mktemp("cli-tls-files")))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, tls_files):
    server = ZooKeeperServer(
        tmp_path_factory.mktemp("cli-tls-server"),
        tls=ServerTls(tls_files.server_pem, tls_files.ca, client_auth="need"),
        sasl=ServerSasl({USER: PASSWORD}))
    try:
        server.start(timeout=60)
    except Exception as exc:
        server.cleanup()
        pytest.fail("could not start the TLS server: %s" % exc, pytrace=False)
    yield server
    server.cleanup()


def _command_env(**variables):
    env = _env()
    for name in FASTZK_VARIABLES:
        env.pop(name, None)
    env.update(variables)
    return env


def run(*args, env=None, timeout=60):
    return subprocess.run(fastzk_cmd(*args), env=env or _command_env(),
                          timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)


def tls_args(server, files, ca=None):
    return ["--hosts", server.secure_address, "--ca", ca or files.ca,
            "--cert", files.client_cert, "--key", files.client_key]


def tls_client(server, files):
    client = KazooClient(hosts=server.secure_address, use_ssl=True,
                         ca=files.ca, certfile=files.client_cert,
                         keyfile=files.client_key)
    client.start(timeout=30)
    return client


@pytest.fixture
def client(tls_server, tls_files):
    made = tls_client(tls_server, tls_files)
    yield made
    made.stop()
    made.close()


@pytest.fixture
def path():
    return "/cli-tls-" + uuid.uuid4().hex


def test_lock_over_tls(tls_server, tls_files, client, path):
    result = run(*tls_args(tls_server, tls_files), "lock", path, "--",
                 sys.executable, "-c", "print('held')")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "held\n", "")
    assert client.exists(path)  # the lock node's parent, made over TLS


def test_tls_options_from_the_environment(tls_server, tls_files, path):
    env = _command_env(ZOOKEEPER_TLS_CA=tls_files.ca,
                       ZOOKEEPER_TLS_CERT=tls_files.client_cert,
                       ZOOKEEPER_TLS_KEY=tls_files.client_key)
    result = run("--hosts", tls_server.secure_address, "lock", path, "--",
                 "true", env=env)
    assert (result.returncode, result.stderr) == (0, "")


def test_encrypted_key_with_its_password_from_the_environment(
        tls_server, tls_files, path):
    args = ["--hosts", tls_server.secure_address, "--ca", tls_files.ca,
            "--cert", tls_files.client_cert,
            "--key", tls_files.client_key_encrypted]
    env = _command_env(MY_KEY_PASSWORD=tls_files.client_key_password)
    result = run(*args, "--key-password-env", "MY_KEY_PASSWORD",
                 "lock", path, "--", "true", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    env = _command_env(FASTZK_KEY_PASSWORD=tls_files.client_key_password)
    result = run(*args, "lock", path, "--", "true", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    result = run(*args, "lock", path, "--", "true")
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "ConfigurationError",
                          "encrypted", "no keyfile_password")


def test_locks_over_tls_says_the_servers_were_not_asked(
        tls_server, tls_files, client, path):
    lock = client.Lock(path, "holder")
    assert lock.acquire(timeout=30)
    try:
        result = run(*tls_args(tls_server, tls_files), "locks", path)
    finally:
        lock.release()
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == "%s: 1 contender, in lock order" % path
    assert " holder " in lines[2] and '"holder"' in lines[2]
    assert lines[-1] == ("(four-letter words not asked: they are plain TCP "
                         "and --hosts is reached over TLS: cannot check)")


def test_watch_over_tls(tls_server, tls_files, client, path):
    client.create(path, b"")
    argv = fastzk_cmd(*tls_args(tls_server, tls_files), "watch", path)
    proc = subprocess.Popen(argv, env=_command_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    try:
        out = LineReader(proc.stdout)
        out.wait_for(r" WATCHING %s$" % path)
        client.create(path + "/a", b"xyz")
        out.wait_for(r" CREATED %s/a dataLength=3 version=0$" % path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr.read() == ""


def test_a_certificate_that_does_not_verify_is_one_line(tls_server,
                                                         tls_files, path):
    started = time.monotonic()
    result = run(*tls_args(tls_server, tls_files, ca=tls_files.other_ca),
                 "lock", path, "--", "true")
    took = time.monotonic() - started
    assert result.returncode == 1
    assert_one_line_error(result.stderr, tls_server.secure_address,
                          "TlsAuthFailedError",
                          "the server's certificate did not verify")
    assert took < 10, took  # not the 15 s connect timeout


def test_no_verify_accepts_any_server_certificate(tls_server, tls_files,
                                                  path):
    result = run(*tls_args(tls_server, tls_files, ca=tls_files.other_ca),
                 "--no-verify", "lock", path, "--", "true")
    assert (result.returncode, result.stderr) == (0, "")


def test_a_missing_key_file_is_one_line(tls_server, tls_files, path):
    result = run("--hosts", tls_server.secure_address, "--ca", tls_files.ca,
                 "--cert", tls_files.client_cert,
                 "--key", tls_files.client_key + ".missing",
                 "lock", path, "--", "true")
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "ConfigurationError",
                          tls_files.client_key + ".missing")


def test_cert_without_key_is_bad_usage(tls_server, tls_files, path):
    result = run("--hosts", tls_server.secure_address,
                 "--cert", tls_files.client_cert, "lock", path, "--", "true")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "--cert and --key go together")


def test_tls_options_after_the_sub_command(tls_server, tls_files, path):
    result = run("lock", *tls_args(tls_server, tls_files), path, "--",
                 "true")
    assert (result.returncode, result.stderr) == (0, "")


def test_sasl_user_with_the_password_from_the_environment(
        tls_server, tls_files, client, path):
    env = _command_env(FASTZK_SASL_PASSWORD=PASSWORD)
    result = run(*tls_args(tls_server, tls_files), "--sasl-user", USER,
                 "lock", path, "--", "true", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    env = _command_env(FASTZK_SASL_PASSWORD=PASSWORD,
                       ZOOKEEPER_SASL_USER=USER)
    result = run(*tls_args(tls_server, tls_files), "lock", path, "--",
                 "true", env=env)
    assert (result.returncode, result.stderr) == (0, "")


def test_sasl_with_a_wrong_password_is_one_line(tls_server, tls_files,
                                                path):
    env = _command_env(FASTZK_SASL_PASSWORD="wrong")
    started = time.monotonic()
    result = run(*tls_args(tls_server, tls_files), "--sasl-user", USER,
                 "lock", path, "--", "true", env=env)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "AuthFailedError")


def test_sasl_user_without_a_password_is_bad_usage(tls_server, tls_files,
                                                   path):
    result = run(*tls_args(tls_server, tls_files), "--sasl-user", USER,
                 "lock", path, "--", "true")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "$FASTZK_SASL_PASSWORD")


def test_help_names_the_tls_options_and_variables():
    result = run("--help")
    assert result.returncode == 0
    for text in ("--tls", "--ca FILE", "--cert FILE", "--key FILE",
                 "--key-password-env NAME", "--no-verify",
                 "--check-hostname", "--sasl-user USER",
                 "FASTZK_SASL_PASSWORD", "ZOOKEEPER_TLS_CA"):
        assert text in result.stdout, text


# -- fastzk bench against an ensemble reached over TLS ------------------------

def _bench(tls_server, tls_files, tmp_path, *security, before=()):
    """``fastzk [BEFORE] bench --hosts SECURE-PORT SECURITY`` with one short
    case and the fleet's plainest variant; returns (CompletedProcess,
    the JSON written or None)."""
    import json

    out = tmp_path / "bench.json"
    env = _command_env()
    env.pop("FASTZK_BENCH_HOSTS", None)
    result = run(*before, "bench", "--quick", "--no-warmup",
                 "--hosts", tls_server.secure_address, *security,
                 "-k", "test_sync_get and not children",
                 "--fleet-variant", "plain", "--json", str(out),
                 env=env, timeout=400)
    if not out.exists():
        return result, None
    with open(str(out)) as f:
        return result, json.load(f)


def test_bench_measures_both_clients_over_tls(tls_server, tls_files,
                                              tmp_path):
    # The secure port needs a client certificate: any figure at all was
    # measured over TLS with one.
    result, data = _bench(tls_server, tls_files, tmp_path, "--ca",
                          tls_files.ca, "--cert", tls_files.client_cert,
                          "--key", tls_files.client_key)
    assert result.returncode == 0, result.stderr[-3000:]
    assert data["server"] == ("external %s over TLS with a client "
                              "certificate" % tls_server.secure_address)
    suite = {(s["case"], s["impl"]): s for s in data["suite"]}
    for impl in ("kazoo", "fastzk"):
        assert suite[("client.sync_get", impl)]["rate"] > 0
    assert suite[("client.sync_get", "fastzk")]["c_client_missing"] == (
        "plaintext only, and the ensemble is reached over TLS or with SASL")
    fleet = {r["impl"]: r for r in data["fleet"]["results"]}
    assert set(fleet) >= {"kazoo", "fastzk"}
    assert "over TLS with a client certificate" in result.stdout


def test_bench_takes_the_global_tls_options(tls_server, tls_files, tmp_path):
    result, data = _bench(tls_server, tls_files, tmp_path, "--no-fleet",
                          before=("--ca", tls_files.ca, "--cert",
                                  tls_files.client_cert, "--key",
                                  tls_files.client_key))
    assert result.returncode == 0, result.stderr[-3000:]
    rates = {(s["case"], s["impl"]): s["rate"] for s in data["suite"]}
    assert rates[("client.sync_get", "kazoo")] > 0
    assert rates[("client.sync_get", "fastzk")] > 0


def test_bench_without_the_client_certificate_cannot_connect(
        tls_server, tls_files, tmp_path):
    result, data = _bench(tls_server, tls_files, tmp_path, "--no-fleet",
                          "--ca", tls_files.ca)
    assert result.returncode == 2
    assert "cannot connect to ZooKeeper at %s" % tls_server.secure_address \
        in result.stderr
    assert data is None


def test_bench_tls_options_need_hosts():
    result = run("bench", "--ca", "/nonexistent", "--no-fleet")
    assert result.returncode == 2
    assert "the TLS and SASL options are for --hosts" in result.stderr
