-- The cluster's node table (skynet's format, the `cluster` config key): name = "host:port",
-- or name = false for a node that is down. Read again on SIGHUP or `cluster reload` in the
-- debug console.
db = "127.0.0.1:2528"
game = "127.0.0.1:2529"
