"""ZooKeeper wire protocol constants, shared by both codec implementations.

The values are ZooKeeper's own: ``ZooDefs.OpCode`` (opcodes), the reserved
xids of ``ClientCnxn``, ``Watcher.Event.EventType`` and
``Watcher.Event.KeeperState`` (watch events), ``KeeperException.Code``
(error codes), ``CreateMode`` (create flags), ``Watcher.WatcherType``
(removeWatches) and ``AddWatchMode``.

The compiled codec reads the same values from ``constants.pxd`` beside this
module (a ``cdef enum`` cimported by ``src/_ccodec.pyx``); the test suite
checks that the two files agree name for name.
"""

# -- opcodes (ZooDefs.OpCode) ---------------------------------------------------

CREATE = 1
DELETE = 2
EXISTS = 3
GET_DATA = 4
SET_DATA = 5
GET_ACL = 6
SET_ACL = 7
GET_CHILDREN = 8
SYNC = 9
PING = 11
GET_CHILDREN2 = 12
CHECK = 13
MULTI = 14
CREATE2 = 15
RECONFIG = 16
CHECK_WATCHES = 17
REMOVE_WATCHES = 18
CREATE_CONTAINER = 19
DELETE_CONTAINER = 20
CREATE_TTL = 21
MULTI_READ = 22
AUTH = 100
SET_WATCHES = 101
SASL = 102
GET_EPHEMERALS = 103
GET_ALL_CHILDREN_NUMBER = 104
SET_WATCHES2 = 105
ADD_WATCH = 106
WHO_AM_I = 107
CREATE_SESSION = -10
CLOSE = -11
#: The type of a failed operation's result in a MultiResponse.
ERROR = -1

# -- reserved xids (ClientCnxn) -------------------------------------------------

#: A watch event (a notification) from the server.
WATCH_XID = -1
PING_XID = -2
AUTH_XID = -4
SET_WATCHES_XID = -8

# -- watch event types (Watcher.Event.EventType) --------------------------------

EVENT_NONE = -1
EVENT_NODE_CREATED = 1
EVENT_NODE_DELETED = 2
EVENT_NODE_DATA_CHANGED = 3
EVENT_NODE_CHILDREN_CHANGED = 4
EVENT_DATA_WATCH_REMOVED = 5
EVENT_CHILD_WATCH_REMOVED = 6
EVENT_PERSISTENT_WATCH_REMOVED = 7

# -- keeper states of a watch event (Watcher.Event.KeeperState) -----------------

STATE_UNKNOWN = -1
STATE_DISCONNECTED = 0
STATE_SYNC_CONNECTED = 3
STATE_AUTH_FAILED = 4
STATE_CONNECTED_READ_ONLY = 5
STATE_SASL_AUTHENTICATED = 6
STATE_CLOSED = 7
STATE_EXPIRED = -112

# -- error codes (KeeperException.Code) -----------------------------------------

OK = 0
SYSTEM_ERROR = -1
RUNTIME_INCONSISTENCY = -2
DATA_INCONSISTENCY = -3
CONNECTION_LOSS = -4
MARSHALLING_ERROR = -5
UNIMPLEMENTED = -6
OPERATION_TIMEOUT = -7
BAD_ARGUMENTS = -8
UNKNOWN_SESSION = -12
NEW_CONFIG_NO_QUORUM = -13
RECONFIG_IN_PROGRESS = -14
API_ERROR = -100
NO_NODE = -101
NO_AUTH = -102
BAD_VERSION = -103
NO_CHILDREN_FOR_EPHEMERALS = -108
NODE_EXISTS = -110
NOT_EMPTY = -111
SESSION_EXPIRED = -112
INVALID_CALLBACK = -113
INVALID_ACL = -114
AUTH_FAILED = -115
SESSION_MOVED = -118
NOT_READ_ONLY = -119
EPHEMERAL_ON_LOCAL_SESSION = -120
NO_WATCHER = -121
REQUEST_TIMEOUT = -122
RECONFIG_DISABLED = -123
SESSION_CLOSED_REQUIRE_SASL_AUTH = -124
QUOTA_EXCEEDED = -125
THROTTLED_OP = -127

# -- create flags (CreateMode.toFlag) -------------------------------------------

CREATE_PERSISTENT = 0
CREATE_EPHEMERAL = 1
#: The sequential bit: PERSISTENT_SEQUENTIAL is 2, EPHEMERAL_SEQUENTIAL 3.
CREATE_SEQUENTIAL = 2
CREATE_CONTAINER_FLAG = 4
CREATE_PERSISTENT_WITH_TTL = 5
CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL = 6

# -- watcher types of removeWatches (Watcher.WatcherType) -----------------------

WATCHER_CHILDREN = 1
WATCHER_DATA = 2
WATCHER_ANY = 3

# -- modes of addWatch (AddWatchMode) -------------------------------------------

ADD_WATCH_PERSISTENT = 0
ADD_WATCH_PERSISTENT_RECURSIVE = 1

# -- sizes and limits -----------------------------------------------------------

#: jute.maxbuffer's default (0xfffff): the largest record a server sends
#: unless configured otherwise.
JUTE_MAX_BUFFER = 0xFFFFF
#: The longest frame body a client accepts: jute.maxbuffer plus room for
#: the reply header and a Stat around a node's data of the maximum size.
#: A longer (or negative) length prefix ends the connection.
MAX_FRAME = JUTE_MAX_BUFFER + 1024
#: SetWatches batches carry at most this many bytes of paths (each path's
#: 4-byte length plus its UTF-8 bytes), like the Java client.
SET_WATCHES_MAX = 128 * 1024
#: A ReplyHeader (``int xid, long zxid, int err``): replies' records start
#: at this offset of the frame body.
REPLY_HEADER_SIZE = 16
#: A jute Stat: 11 fields, 68 bytes.
STAT_SIZE = 68
