# ZooKeeper wire protocol constants for the compiled codec.
#
# The same names and values as constants.py beside this file (see its
# docstring for where they come from); the test suite checks that the two
# agree.  Cimport it as a module (``cimport fastzk.protocol.constants as
# zk``): its C names then stay apart from the cimporting module's Python
# names of the same spelling.

cdef enum:

    # opcodes (ZooDefs.OpCode)
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
    ERROR = -1

    # reserved xids (ClientCnxn)
    WATCH_XID = -1
    PING_XID = -2
    AUTH_XID = -4
    SET_WATCHES_XID = -8

    # watch event types (Watcher.Event.EventType)
    EVENT_NONE = -1
    EVENT_NODE_CREATED = 1
    EVENT_NODE_DELETED = 2
    EVENT_NODE_DATA_CHANGED = 3
    EVENT_NODE_CHILDREN_CHANGED = 4
    EVENT_DATA_WATCH_REMOVED = 5
    EVENT_CHILD_WATCH_REMOVED = 6
    EVENT_PERSISTENT_WATCH_REMOVED = 7

    # keeper states of a watch event (Watcher.Event.KeeperState)
    STATE_UNKNOWN = -1
    STATE_DISCONNECTED = 0
    STATE_SYNC_CONNECTED = 3
    STATE_AUTH_FAILED = 4
    STATE_CONNECTED_READ_ONLY = 5
    STATE_SASL_AUTHENTICATED = 6
    STATE_CLOSED = 7
    STATE_EXPIRED = -112

    # error codes (KeeperException.Code)
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

    # create flags (CreateMode.toFlag)
    CREATE_PERSISTENT = 0
    CREATE_EPHEMERAL = 1
    CREATE_SEQUENTIAL = 2
    CREATE_CONTAINER_FLAG = 4
    CREATE_PERSISTENT_WITH_TTL = 5
    CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL = 6

    # watcher types of removeWatches (Watcher.WatcherType)
    WATCHER_CHILDREN = 1
    WATCHER_DATA = 2
    WATCHER_ANY = 3

    # modes of addWatch (AddWatchMode)
    ADD_WATCH_PERSISTENT = 0
    ADD_WATCH_PERSISTENT_RECURSIVE = 1

    # sizes and limits
    JUTE_MAX_BUFFER = 0xFFFFF
    MAX_FRAME = 0xFFFFF + 1024
    SET_WATCHES_MAX = 128 * 1024
    REPLY_HEADER_SIZE = 16
    STAT_SIZE = 68
