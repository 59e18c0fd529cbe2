"""The proxy's one-shot frame hooks: cut a connection at a chosen
ZooKeeper frame, replace a reply, or slip bytes into the reply stream.

:class:`Hook` is what the hook methods return; :class:`_FrameHooks` holds
those methods and the checks the connection pumps run on each complete
frame.  :class:`fastzk.testing.proxy.TcpProxy` inherits them.
"""

import sys
import threading
from typing import TYPE_CHECKING, Callable, List, Optional, Set, Tuple

try:
    from .proxyframes import Predicate, _Body, reply_xid, request_xid
except ImportError:  # loaded as a plain module, next to proxyframes.py
    from proxyframes import (  # type: ignore[no-redef,import-not-found]
        Predicate,
        _Body,
        reply_xid,
        request_xid,
    )

if TYPE_CHECKING:
    from .proxyconn import _Connection

__all__ = ["Hook"]


class Hook:
    """A one-shot frame hook returned by the ``cut_on_*`` methods.

    ``fired`` is a threading.Event set once the connection the hook cut is
    closed; ``frame`` is the body that triggered it; ``error`` holds an
    exception raised by the predicate (which then counts as no match).
    Predicates run on the proxy's threads and must not call the proxy.
    """

    def __init__(self, proxy: "_FrameHooks", direction: str,
                 predicate: Predicate, include_handshake: bool) -> None:
        self._proxy = proxy
        self.direction = direction  # "request" or "reply"
        self.predicate = predicate
        self.include_handshake = include_handshake
        self.fired = threading.Event()
        self.frame: Optional[bytes] = None
        self.error: Optional[Exception] = None
        # For cut_on_reply_to: (connection, xid) pairs whose reply to drop.
        self.pending: Optional[Set[Tuple["_Connection", int]]] = None
        # For corrupt_reply: body -> bytes sent instead of the frame, and
        # what to do with the connection afterwards (None, "close", "reset").
        self.mutate: Optional[Callable[[bytes], bytes]] = None
        self.then: Optional[str] = None

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the hook fired; return True if it did."""
        return self.fired.wait(timeout)

    def cancel(self) -> None:
        """Remove the hook if it has not fired yet."""
        self._proxy._remove_hook(self)

    def _matches(self, body: bytes) -> bool:
        try:
            return bool(self.predicate(body))
        except Exception as exc:  # a broken predicate must not kill the pump
            self.error = exc
            print("proxy hook predicate raised %r" % (exc,), file=sys.stderr)
            return False



class _FrameHooks:
    """The frame hooks of :class:`fastzk.testing.proxy.TcpProxy`, which
    sets the attributes declared here."""

    _lock: "threading.RLock"
    _connections: Set["_Connection"]
    _hooks: List[Hook]
    _corrupters: List[Hook]
    connections_cut: int
    frames_corrupted: int
    injections: int

    def cut_on_request(self, predicate: Predicate,
                       include_handshake: bool = False) -> Hook:
        """Cut the connection at the first client frame whose body satisfies
        ``predicate(body)``; that frame is not forwarded (the server never
        sees it), frames before it are.  One-shot.  The ConnectRequest is
        offered to the predicate only if ``include_handshake``.
        Returns a :class:`Hook`."""
        return self._add_hook(Hook(self, "request", predicate,
                                   include_handshake))

    def cut_on_reply(self, predicate: Predicate,
                     include_handshake: bool = False) -> Hook:
        """Cut the connection at the first server frame whose body satisfies
        ``predicate(body)``; that frame is dropped (the request it answers
        did run on the server).  One-shot.  The ConnectResponse is offered
        to the predicate only if ``include_handshake``.  Returns a Hook."""
        return self._add_hook(Hook(self, "reply", predicate,
                                   include_handshake))

    def cut_on_reply_to(self, request_predicate: Predicate) -> Hook:
        """Let the first request satisfying ``request_predicate(body)``
        through, then drop its reply (matched by xid on the same
        connection) and cut.  One-shot.  Returns a Hook."""
        hook = Hook(self, "reply_to", request_predicate, False)
        hook.pending = set()
        return self._add_hook(hook)

    def corrupt_reply(self, predicate: Predicate,
                      mutate: Callable[[bytes], bytes],
                      include_handshake: bool = False,
                      then: Optional[str] = None) -> Hook:
        """Replace the first server frame whose body satisfies
        ``predicate(body)`` by the bytes ``mutate(body)`` returns.

        The bytes go to the client verbatim in place of the whole frame,
        length prefix included: return ``encode_frame(new_body)`` for a
        well-framed reply, or anything else (a wrong or impossible length
        prefix, half a frame, nothing) to break the framing.  Frames after
        it are forwarded as usual unless ``then`` is ``"close"`` (after the
        bytes the client gets a FIN: the connection ends there, e.g. in the
        middle of a frame) or ``"reset"`` (an RST after the bytes).
        One-shot.  The ConnectResponse is offered to the predicate only if
        ``include_handshake``.  Both functions run on the proxy's threads
        and must not call the proxy; an exception in either counts as no
        match (see :attr:`Hook.error`).

        Returns a :class:`Hook`: ``frame`` is the original body, ``fired``
        is set once the replacement is queued for the client (with
        ``then``, once the connection is closed).
        """
        if then not in (None, "close", "reset"):
            raise ValueError("then must be None, 'close' or 'reset', not %r"
                             % (then,))
        hook = Hook(self, "corrupt", predicate, include_handshake)
        hook.mutate = mutate
        hook.then = then
        with self._lock:
            self._corrupters = self._corrupters + [hook]
        return hook

    def inject_to_client(self, data: _Body,
                         then: Optional[str] = None) -> int:
        """Send ``data`` to the client of every current connection, as if
        the server had sent it, at the next frame boundary of the reply
        stream.  ``then``: None (keep forwarding), ``"close"`` (FIN after
        the bytes) or ``"reset"`` (RST after the bytes).  Returns the
        number of connections it was given to."""
        if then not in (None, "close", "reset"):
            raise ValueError("then must be None, 'close' or 'reset', not %r"
                             % (then,))
        data = bytes(data)
        with self._lock:
            conns = list(self._connections)
            self.injections += len(conns)
        for conn in conns:
            conn.injections.append((data, then))
            conn.wake()
        return len(conns)

    def clear_hooks(self) -> None:
        """Remove every hook that has not fired."""
        with self._lock:
            self._hooks = []
            self._corrupters = []

    def _add_hook(self, hook: Hook) -> Hook:
        with self._lock:
            self._hooks = self._hooks + [hook]
        return hook

    def _remove_hook(self, hook: Hook) -> None:
        with self._lock:
            self._hooks = [h for h in self._hooks if h is not hook]
            self._corrupters = [h for h in self._corrupters if h is not hook]

    def _check_corrupt(self, conn: "_Connection", body: bytes, handshake: bool
                       ) -> Optional[Tuple[bytes, Optional[str]]]:
        """Called by the pump for each complete server frame; returns
        ``(bytes, then)`` to send instead of it, or None."""
        with self._lock:
            for hook in self._corrupters:
                if handshake and not hook.include_handshake:
                    continue
                mutate = hook.mutate
                if mutate is None or not hook._matches(body):
                    continue  # (corrupt_reply sets mutate)
                try:
                    data = bytes(mutate(body))
                except Exception as exc:
                    hook.error = exc
                    print("proxy corrupt_reply mutate raised %r" % (exc,),
                          file=sys.stderr)
                    continue
                self._corrupters = [h for h in self._corrupters
                                    if h is not hook]
                hook.frame = body
                self.frames_corrupted += 1
                if hook.then:
                    self.connections_cut += 1
                    conn.fired_hooks.append(hook)
                else:
                    hook.fired.set()
                return data, hook.then
        return None

    def _check_hooks(self, conn: "_Connection", direction: str, body: bytes,
                     handshake: bool) -> bool:
        """Called by the pump for each complete frame; True means cut."""
        if not self._hooks:
            return False
        with self._lock:
            for hook in self._hooks:
                if hook.direction == "reply_to":
                    pending = hook.pending
                    if handshake or pending is None:
                        continue  # (cut_on_reply_to sets pending)
                    if direction == "request":
                        if not pending and len(body) >= 8 \
                                and hook._matches(body):
                            pending.add((conn, request_xid(body)))
                        continue
                    if len(body) < 4 or \
                            (conn, reply_xid(body)) not in pending:
                        continue
                elif hook.direction != direction:
                    continue
                elif handshake and not hook.include_handshake:
                    continue
                elif not hook._matches(body):
                    continue
                self._hooks = [h for h in self._hooks if h is not hook]
                hook.frame = body
                self.connections_cut += 1
                conn.fired_hooks.append(hook)
                return True
        return False

