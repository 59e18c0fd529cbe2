"""TLS connections: kazoo's ``use_ssl`` parameters over :mod:`ssl`.

:func:`client_context` builds one :class:`ssl.SSLContext` per client from
kazoo 2.11's parameters, with their meaning (the system's default CAs plus
``ca``; a client certificate when both ``certfile`` and ``keyfile`` are
given; the host name checked only with ``check_hostname``).
:class:`TlsTransport` opens connections with it: TCP as
:class:`~fastzk.drivers.transport.PlainTransport` does, then the TLS
handshake, both bounded by the same deadline and stop checks.

The sockets it returns are :class:`TlsSocket`: non-blocking underneath,
every call into the TLS layer made under one lock (an OpenSSL connection
must not be used by two threads at once, and a sender and a reader may
be busy together), and no thread ever waits for the network while holding
that lock.  The frame readers of both cores read them through
:meth:`TlsSocket.pending` and :meth:`TlsSocket.recv_into`; the compiled
core's takes ``_tls_lock`` itself to decrypt several records per hold, and
its ``send_all`` to make one ``SSL_write`` without :meth:`TlsSocket.sendall`'s
Python layers.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Callable, NoReturn, Optional, Tuple, Union

from kazoo.exceptions import AuthFailedError, ConfigurationError
from kazoo.handlers.threading import KazooTimeoutError

from fastzk.drivers.transport import (
    STOP_CHECK_INTERVAL,
    PlainTransport,
    TransportStopped,
)

__all__ = ["TlsAuthFailedError", "TlsSocket", "TlsTransport",
           "client_context", "explain_failure"]

_HAS_POLL = hasattr(select, "poll")
_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)

# Reasons (OpenSSL's) that retrying the same server will not change: its
# certificate, or the server's verdict on ours.
_REFUSED_REASONS = {
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused the client "
    "certificate (or its absence: does the server require one?)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client "
    "certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the server does not trust the "
    "client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the CA of the "
    "client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server says the client "
    "certificate has expired",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the server does not accept the "
    "client certificate's type",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server speaks no TLS version the "
    "client offers",
}


class TlsAuthFailedError(AuthFailedError, KazooTimeoutError):  # type: ignore[misc]
    """The TLS handshake failed for a reason retrying will not cure: the
    server's certificate did not verify, or the server refused the client's
    certificate.

    An :exc:`~kazoo.exceptions.AuthFailedError` (kazoo's exception for a
    session whose credentials the other side refuses, after which it stops
    connecting), and also a
    :exc:`~kazoo.handlers.threading.KazooTimeoutError`, the exception kazoo
    raises from ``start()`` for every TLS failure, so code written for
    kazoo still catches it.  Raised by ``start()`` as soon as every server
    was tried once, instead of at the end of its timeout.
    """


class TlsSocket(ssl.SSLSocket):
    """An :class:`ssl.SSLSocket` safe to send on from one thread while
    another reads it.

    The descriptor stays non-blocking whatever :meth:`settimeout` is given:
    the timeout bounds :meth:`sendall`, which waits for the socket outside
    the TLS lock.  :meth:`recv_into` never waits, it raises
    :exc:`ssl.SSLWantReadError` when no whole record is in; callers wait
    for the descriptor, after :meth:`pending` said nothing is buffered.
    """

    _tls_lock: threading.Lock
    _send_timeout: Optional[float]

    def _init_tls(self) -> None:
        self._tls_lock = threading.Lock()
        self._send_timeout = None
        super().settimeout(0.0)

    def settimeout(self, value: Optional[float]) -> None:
        """Bound :meth:`sendall` by ``value`` seconds (None: no bound); the
        socket itself stays non-blocking."""
        self._send_timeout = value

    def pending(self) -> int:
        """The decrypted bytes buffered in the TLS layer, readable without
        waiting for the socket."""
        with self._tls_lock:
            return super().pending()

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[no-untyped-def, override]
        """Read decrypted bytes into ``buffer`` without waiting.

        :raises ssl.SSLWantReadError: no whole TLS record has arrived.
        """
        with self._tls_lock:
            return super().recv_into(buffer, nbytes, flags)

    def sendall(self, data, flags: int = 0) -> None:  # type: ignore[no-untyped-def]
        """Send all of ``data``, waiting at most the timeout given to
        :meth:`settimeout` for the socket to take it.

        :raises socket.timeout: the server did not take the data in time.
        """
        timeout = self._send_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with memoryview(data) as view:
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            sent = 0
            size = len(view)
            while sent < size:
                try:
                    with self._tls_lock:
                        sent += super().send(view[sent:], flags)
                except ssl.SSLWantWriteError:
                    _wait_for(self, select.POLLOUT if _HAS_POLL else 0,
                              deadline)
                except ssl.SSLWantReadError:
                    _wait_for(self, select.POLLIN if _HAS_POLL else 0,
                              deadline)


def _wait_for(sock: socket.socket, events: int,
              deadline: Optional[float]) -> None:
    """Wait until ``sock`` is ready for ``events`` (poll flags), or raise
    :exc:`socket.timeout` at ``deadline``."""
    remaining = None
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
    if _HAS_POLL:
        poller = select.poll()
        poller.register(sock, events)
        poller.poll(None if remaining is None else remaining * 1000.0)
    else:
        select.select([sock], [sock], [sock], remaining)


class _NoPassword(ValueError):
    """An encrypted key file met without a password."""


def _refuse_prompt(*args: object) -> NoReturn:
    raise _NoPassword()


def client_context(ca: Optional[str] = None, certfile: Optional[str] = None,
                   keyfile: Optional[str] = None,
                   keyfile_password: Optional[str] = None,
                   verify_certs: bool = True,
                   check_hostname: bool = False) -> ssl.SSLContext:
    """The client :class:`ssl.SSLContext` for kazoo's TLS parameters.

    As kazoo 2.11 builds it, at TLS 1.2 or newer on every Python build
    (some distributions' Pythons would allow older versions): the system's
    default CAs plus ``ca``, the server's certificate verified unless
    ``verify_certs`` is False, its host name only with ``check_hostname``,
    the client certificate loaded when both ``certfile`` and ``keyfile``
    are given.  An encrypted key never prompts on a terminal.

    :raises kazoo.exceptions.ConfigurationError: a file that cannot be read
            or loaded (naming it), an encrypted key with a wrong or missing
            password, or ``check_hostname`` without ``verify_certs``.
    """
    if check_hostname and not verify_certs:
        raise ConfigurationError(
            "verify_certs must be True when check_hostname is True")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED if verify_certs else ssl.CERT_NONE
    if ca:
        try:
            context.load_verify_locations(ca)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                "cannot load the CA certificates of ca=%r: %s" % (ca, exc))
    if certfile and keyfile:
        password: Union[str, Callable[..., NoReturn]] = (
            keyfile_password if keyfile_password is not None
            else _refuse_prompt)
        try:
            context.load_cert_chain(certfile, keyfile, password=password)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                "cannot load the client certificate certfile=%r with "
                "keyfile=%r: %s" % (certfile, keyfile,
                                    _key_problem(exc, keyfile_password)))
    context.sslsocket_class = TlsSocket
    return context


def _key_problem(exc: BaseException, password: Optional[str]) -> str:
    if isinstance(exc, _NoPassword):
        return "the key file is encrypted and no keyfile_password was given"
    text = str(exc)
    if isinstance(exc, ssl.SSLError) and (
            "bad decrypt" in text.lower() or "BAD_DECRYPT" in text
            or (password is not None and "PEM lib" in text)):
        return "wrong keyfile_password for the encrypted key (%s)" % text
    return text


class TlsTransport(object):
    """TLS over TCP, with one :class:`ssl.SSLContext` for every connection
    of a client (see :func:`client_context`)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._tcp = PlainTransport()

    def connect(self, address: str, port: int, timeout: float,
                stopped: Callable[[], bool],
                server_name: Optional[str] = None) -> socket.socket:
        """A TLS connection to ``address:port``, its handshake done, within
        ``timeout`` seconds; given up once ``stopped()`` is true.

        :param server_name: the host name sent for SNI and checked against
                            the certificate (with ``check_hostname``);
                            the address when not given.
        :returns: a :class:`TlsSocket`, its sends bounded by ``timeout``.
        :raises ssl.SSLError: the handshake failed.
        """
        deadline = time.monotonic() + timeout
        raw = self._tcp.connect(address, port, timeout, stopped)
        try:
            sock = self.context.wrap_socket(
                raw, server_hostname=(server_name or address).strip(),
                do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        try:
            assert isinstance(sock, TlsSocket)
            sock._init_tls()
            _handshake(sock, deadline, stopped)
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def explain(self, exc: BaseException) -> Tuple[BaseException, bool]:
        """See :func:`explain_failure`."""
        return explain_failure(exc)


def _handshake(sock: TlsSocket, deadline: float,
               stopped: Callable[[], bool]) -> None:
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            events = select.POLLIN if _HAS_POLL else 0
        except ssl.SSLWantWriteError:
            events = select.POLLOUT if _HAS_POLL else 0
        if stopped():
            raise TransportStopped()
        if time.monotonic() >= deadline:
            raise socket.timeout("timed out in the TLS handshake")
        _wait_a_little(sock, events, deadline)


def _wait_a_little(sock: socket.socket, events: int, deadline: float) -> None:
    try:
        _wait_for(sock, events,
                  min(deadline, time.monotonic() + STOP_CHECK_INTERVAL))
    except socket.timeout:
        pass


def explain_failure(exc: BaseException) -> Tuple[BaseException, bool]:
    """A clearer exception for a failed TLS connection attempt, and whether
    retrying it would be futile.

    :returns: ``(error, permanent)``: for a certificate that did not verify
              or a certificate the server refused, a
              :exc:`TlsAuthFailedError` saying why and True; otherwise
              ``exc`` (reworded when the server closed the connection in
              the handshake) and False.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return (TlsAuthFailedError(
            "TLS handshake failed: the server's certificate did not "
            "verify: %s" % (reason,)), True)
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or ""
        refused = _REFUSED_REASONS.get(reason)
        if refused is not None:
            return (TlsAuthFailedError("TLS handshake failed: %s (%s)"
                                       % (refused, reason)), True)
        # The server closed the connection in the handshake: OpenSSL says
        # so as an EOF or, on some builds, as a TLS close.
        closed = (ssl.SSLEOFError, ssl.SSLZeroReturnError)
        if isinstance(exc, closed) or reason in (
                "WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING"):
            return (ConnectionAbortedError(
                "TLS handshake failed: the server closed the connection "
                "without answering in TLS (is this its secure client "
                "port?): %s" % (exc,)), False)
        return (ConnectionAbortedError("TLS error: %s" % (exc,)), False)
    return exc, False

