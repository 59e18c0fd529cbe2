"""Which server to try next, and why the last attempts failed.

:class:`HostRounds` is the bookkeeping of a driver's connection attempts,
with no I/O of its own: the order of the servers in a round through the
host list (shuffled when asked, a preferred server first), the error of
each failed attempt (kept per round until a connection is made, and logged
once per server and reason), and the rule that ends the attempts for good:
before any connection was made, every server failed for a reason retrying
cannot change (a certificate that does not verify).
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from typing import Deque, Dict, Iterable, List, Optional, Tuple

from fastzk.drivers.jitter import RANDOM as _random

__all__ = ["Address", "HostRounds", "resolve"]

#: ``(host, address, port)``: a server's name as configured, one address it
#: resolves to, its port.
Address = Tuple[str, str, int]
Errors = Dict[Tuple[str, int], BaseException]

# Rounds kept for failed_rounds().
_ROUNDS_KEPT = 8


def resolve(hosts: Iterable[Tuple[str, int]], errors: Optional[Errors] = None,
            logger: Optional[logging.Logger] = None) -> List[Address]:
    """Each address of each ``(host, port)``, in the configured order; a
    name that does not resolve goes to ``errors`` (and the log)."""
    addresses = []
    for host, port in hosts:
        try:
            for info in socket.getaddrinfo(host.strip(), port, 0, 0,
                                           socket.IPPROTO_TCP):
                addresses.append((host, str(info[4][0]), int(info[4][1])))
        except socket.gaierror as exc:
            if logger is not None:
                logger.warning("Cannot resolve %s: %s", host, exc)
            if errors is not None:
                errors[(host, port)] = exc
    return addresses


class HostRounds(object):
    """The connection attempts of one client since its :meth:`reset`.

    :param logger: where failed attempts are reported.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        #: ``(host, port)`` of the server to try first in the next round.
        self.preferred: Optional[Tuple[str, int]] = None
        #: ``(host, port)`` of the attempt under way, or None.
        self.attempting: Optional[Tuple[str, int]] = None
        self._failed: Deque[Errors] = deque(maxlen=_ROUNDS_KEPT)
        self._round: Optional[Errors] = None
        self._ever_connected = False
        self._logged: Dict[Tuple[str, int], str] = {}

    def reset(self) -> None:
        """Forget everything: the client starts anew."""
        self._ever_connected = False
        self._logged = {}

    def begin(self, addresses: List[Address], randomize: bool) -> List[Address]:
        """Start a round through ``addresses``; returns them in the order
        to try them."""
        if randomize:
            _random.shuffle(addresses)
        preferred = self.preferred
        if preferred is not None:
            self.preferred = None
            addresses.sort(key=lambda a: (a[0], a[2]) != preferred)
        return addresses

    def new_round(self) -> Errors:
        """The record of the round starting now (resolution errors go in
        it before :meth:`begin`)."""
        errors: Errors = {}
        self._round = errors
        return errors

    def failed(self, host: str, port: int, error: BaseException,
               permanent: bool) -> None:
        """Record why connecting to ``host:port`` failed; warn once per
        server and reason until a connection is made.

        :param permanent: retrying cannot help (see :meth:`end`).
        """
        if permanent:
            error.futile = True  # type: ignore[attr-defined]
        errors = self._round
        if errors is not None:
            errors[(host, port)] = error
        message = str(error)
        if self._logged.get((host, port)) != message:
            self._logged[(host, port)] = message
            self.logger.warning("Connection to %s:%s failed: %s", host, port,
                                message)
        else:
            self.logger.debug("Connection to %s:%s failed again: %s", host,
                              port, message)

    def connected(self) -> None:
        """A connection was made: the failures are history."""
        self._round = None
        self._failed.clear()
        self._ever_connected = True
        self._logged = {}

    def end(self, errors: Errors) -> Optional[BaseException]:
        """End the round recorded in ``errors``.

        :returns: the error to stop with when retrying cannot help (no
                  connection was made since :meth:`reset` and every server
                  of the round failed for good), else None.
        """
        if self._round is not errors:
            return None  # a connection was made in this round
        self._failed.append(errors)
        if self._ever_connected or not errors:
            return None
        if all(getattr(e, "futile", False) for e in errors.values()):
            return errors[sorted(errors)[0]]
        return None

    def failed_rounds(self) -> List[Errors]:
        """One dict per round through the host list in which no server was
        connected, oldest first, mapping ``(host, port)`` to the exception
        of its last attempt.  Only the rounds since the last connection, at
        most the last eight."""
        return [dict(errors) for errors in list(self._failed)]

    def connect_errors(self) -> Errors:
        """The error of the latest failed attempt on each server since the
        last connection, the round under way included."""
        latest: Errors = {}
        for errors in self.failed_rounds():
            latest.update(errors)
        current = self._round
        if current is not None:
            latest.update(dict(current))
        return latest
