"""Argument checking and record writers of the pure-Python codec.

Part of :mod:`fastzk._codec` (import the codec from there), beside
the compiled twin's ``primitives.pxi``: the checks that turn a bad
argument into the codec's TypeError or ValueError, and the writers the
encoders append jute fields with.
"""

import operator
import struct

_I = struct.Struct("!i")
_Q = struct.Struct("!q")
_HDR = struct.Struct("!iii")  # length, xid, opcode


def _bad_ints(*specs):
    """Raise the TypeError/ValueError explaining why an int did not pack.

    Called only after ``struct`` refused a value; ``specs`` holds
    ``(name, value, bits)`` triples.
    """
    for name, value, bits in specs:
        try:
            v = operator.index(value)
        except TypeError:
            raise TypeError(
                "%s must be an int, not %s" % (name, type(value).__name__)
            ) from None
        limit = 1 << (bits - 1)
        if not -limit <= v < limit:
            raise ValueError(
                "%s=%d does not fit in a signed %d-bit integer" % (name, v, bits)
            )
    raise ValueError("frame too large")


def _ustring(value, name="path"):
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("%s must be str, not %s" % (name, type(value).__name__))


def _opt_ustring(value, name):
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("%s must be str or None, not %s" % (name, type(value).__name__))


def _buffer(data, name="data"):
    if data is None or type(data) is bytes:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            "%s must be bytes or None, not %s" % (name, type(data).__name__)
        ) from None
    with view:
        return view.tobytes()


def _w_string(out, raw):
    """Append a ustring/buffer already converted to bytes (None = null)."""
    if raw is None:
        out += b"\xff\xff\xff\xff"
    else:
        out += _I.pack(len(raw))
        out += raw


def _w_int(out, value, name):
    try:
        out += _I.pack(value)
    except struct.error:
        _bad_ints((name, value, 32))


def _w_long(out, value, name):
    try:
        out += _Q.pack(value)
    except struct.error:
        _bad_ints((name, value, 64))


def _w_acl(out, acl):
    """Append a vector<ACL> (``None`` is the null vector)."""
    if acl is None:
        out += b"\xff\xff\xff\xff"
        return
    if not isinstance(acl, (list, tuple)):
        try:
            acl = list(acl)
        except TypeError:
            raise TypeError(
                "acl must be a sequence of ACLs, not %s" % type(acl).__name__
            ) from None
    out += _I.pack(len(acl))
    for entry in acl:
        if isinstance(entry, tuple) and len(entry) == 3:
            perms, scheme, ident = entry
        else:
            try:
                perms = entry.perms
                scheme = entry.id.scheme
                ident = entry.id.id
            except AttributeError:
                raise TypeError(
                    "acl entries must be kazoo.security.ACL objects or "
                    "(perms, scheme, id) tuples, not %s" % type(entry).__name__
                ) from None
        _w_int(out, perms, "acl perms")
        _w_string(out, _opt_ustring(scheme, "acl scheme"))
        _w_string(out, _opt_ustring(ident, "acl id"))


def _finish(out, xid, opcode):
    """Fill in the length prefix and request header reserved at ``out[:12]``."""
    try:
        _HDR.pack_into(out, 0, len(out) - 4, xid, opcode)
    except struct.error:
        _bad_ints(("xid", xid, 32), ("opcode", opcode, 32))
    return bytes(out)
