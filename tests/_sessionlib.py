"""Helpers shared by the tests that drive the session machine with
recorded frames and no server."""

import struct

PASSWD = bytes(range(16))
SESSION = 0x1234567890


class Result(object):
    """A request's completion, remembering what it was told."""

    def __init__(self):
        self.calls = []

    def set(self, value=None):
        self.calls.append(("value", value))

    def set_exception(self, error):
        self.calls.append(("error", error))

    @property
    def value(self):
        assert len(self.calls) == 1, self.calls
        kind, value = self.calls[0]
        assert kind == "value", value
        return value

    @property
    def error(self):
        assert len(self.calls) == 1, self.calls
        kind, error = self.calls[0]
        assert kind == "error", error
        return error


def header(xid, zxid=0, err=0):
    return struct.pack(">iqi", xid, zxid, err)


def connect_response(timeout_ms=30000, session_id=SESSION, passwd=PASSWD,
                     read_only=False):
    return (struct.pack(">iiq", 0, timeout_ms, session_id)
            + struct.pack(">i", len(passwd)) + passwd
            + (b"\x01" if read_only else b"\x00"))
