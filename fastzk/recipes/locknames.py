"""The names of lock contender nodes, and the order they hold the lock in.

kazoo's lock recipes (and :mod:`fastzk.lock`) make one ephemeral sequential
child of the lock path per contender, named ``<uuid hex><marker><sequence>``:

- the marker is ``__lock__`` for an exclusive contender (``Lock``,
  ``WriteLock``) and ``__rlock__`` for a shared one (``ReadLock``);
- the sequence is the number ZooKeeper appends to a sequential node: its
  parent's counter formatted as ``%010d``, ten digits (a ``-`` and ten
  digits once the signed 32-bit counter has overflowed).

Contenders are ordered by sequence compared as an integer, never as text.
A contender waits for the earlier contenders whose marker is among those
it is blocked by (:data:`BLOCKED_BY` for a read-write lock: a writer by
everyone, a reader by writers only); the latest of them is its
predecessor, the node it watches, and without one it holds the lock.
Children whose names do not follow the pattern are not contenders.
"""

import functools
import re
from typing import (
    Dict,
    FrozenSet,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
)

__all__ = [
    "EXCLUSIVE",
    "SHARED",
    "BLOCKED_BY",
    "Contender",
    "sequence_of",
    "contender_pattern",
    "parse",
    "in_lock_order",
    "predecessor",
    "waits_for",
    "holding",
]

#: The marker of an exclusive contender (kazoo's Lock and WriteLock).
EXCLUSIVE = "__lock__"
#: The marker of a shared contender (kazoo's ReadLock).
SHARED = "__rlock__"

#: For each marker, the markers of the earlier contenders it waits for in
#: a read-write lock (kazoo's ``WriteLock`` and ``ReadLock``).  A plain
#: ``Lock`` waits for ``__lock__`` nodes only.
BLOCKED_BY: Dict[str, FrozenSet[str]] = {
    EXCLUSIVE: frozenset((EXCLUSIVE, SHARED)),
    SHARED: frozenset((EXCLUSIVE,)),
}

_SEQUENCE_RE = re.compile(r"(-?\d{10})$")


class Contender(NamedTuple):
    """A contender node's name, split into its parts."""

    #: The child's name, e.g. ``"9f3c...__lock__0000000042"``.
    node: str
    #: :data:`EXCLUSIVE`, :data:`SHARED` or another marker asked for.
    marker: str
    #: The sequence number, as an integer.
    sequence: int

    @property
    def shared(self) -> bool:
        """Whether this is a reader (``__rlock__``)."""
        return self.marker == SHARED


def sequence_of(node: str) -> int:
    """The sequence number that ends the name ``node``.

    :raises: ValueError when ``node`` does not end with one.
    """
    match = _SEQUENCE_RE.search(node)
    if match is None:
        raise ValueError("no sequence number at the end of %r" % node)
    return int(match.group(1))


def contender_pattern(markers: Iterable[str]) -> "re.Pattern[str]":
    """A compiled pattern finding ``<marker><sequence>`` at the end of a
    name, for any of ``markers``; its only group is the sequence, as in
    kazoo's ``Lock._contenders_re`` (kazoo's methods may use it)."""
    return _compiled_pattern(frozenset(markers))


@functools.lru_cache(maxsize=64)
def _compiled_pattern(markers: FrozenSet[str]) -> "re.Pattern[str]":
    return re.compile(r"(?:%s)(-?\d{10})$"
                      % "|".join(re.escape(m) for m in sorted(markers)))


def parse(node: str,
          markers: Iterable[str] = (EXCLUSIVE, SHARED)) -> Optional[Contender]:
    """``node`` as a :class:`Contender` with one of ``markers``, or None
    when it is not one."""
    match = contender_pattern(markers).search(node)
    if match is None:
        return None
    return _contender(node, match)


def _contender(node: str, match: "re.Match[str]") -> Contender:
    marker = node[match.start():match.start(1)]
    return Contender(node, marker, int(match.group(1)))


def in_lock_order(children: Iterable[str],
                  markers: Iterable[str] = (EXCLUSIVE, SHARED)
                  ) -> List[Contender]:
    """The contenders among ``children`` (those with one of ``markers``),
    by sequence number, then name."""
    pattern = contender_pattern(markers)
    found = []
    for child in children:
        match = pattern.search(child)
        if match is not None:
            found.append(_contender(child, match))
    found.sort(key=lambda c: (c.sequence, c.node))
    return found


def predecessor(node: str, children: Iterable[str],
                blocked_by: Iterable[str]) -> Optional[str]:
    """The contender ``node`` waits for: among ``children``, the one with a
    marker in ``blocked_by`` and the greatest sequence below ``node``'s; or
    None when ``node`` holds the lock.

    :raises: LookupError when ``node`` is not among ``children`` (it is
             gone: its session ended or it was deleted); ValueError when
             ``node`` has no sequence number.
    """
    own = sequence_of(node)
    search = contender_pattern(blocked_by).search
    found_self = False
    best_sequence = None
    best = None
    for child in children:
        if child == node:
            found_self = True
            continue
        match = search(child)
        if match is not None:
            sequence = int(match.group(1))
            if sequence < own and (best_sequence is None
                                   or sequence > best_sequence):
                best_sequence = sequence
                best = child
    if not found_self:
        raise LookupError("%r is not among the contenders" % node)
    return best


def waits_for(contenders: Sequence[Contender], index: int,
              blocked_by: Optional[Dict[str, FrozenSet[str]]] = None
              ) -> List[Contender]:
    """The contenders before ``contenders[index]`` (a list in lock order)
    that it waits for, by the rules ``blocked_by`` (default
    :data:`BLOCKED_BY`)."""
    rules = BLOCKED_BY if blocked_by is None else blocked_by
    blockers = rules.get(contenders[index].marker, frozenset())
    return [c for c in contenders[:index] if c.marker in blockers]


def holding(contenders: Sequence[Contender],
            blocked_by: Optional[Dict[str, FrozenSet[str]]] = None
            ) -> List[bool]:
    """For each of ``contenders`` (a list in lock order), whether it holds
    the lock: whether none before it is one it waits for, by the rules
    ``blocked_by`` (default :data:`BLOCKED_BY`)."""
    rules = BLOCKED_BY if blocked_by is None else blocked_by
    seen: "set[str]" = set()
    held = []
    for contender in contenders:
        held.append(seen.isdisjoint(rules.get(contender.marker, ())))
        seen.add(contender.marker)
    return held
