"""The ZooKeeper wire protocol: its constants (:mod:`fastzk.protocol.constants`)."""
