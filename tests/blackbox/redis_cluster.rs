//! `skynet.db.redis.cluster` (and `skynet.db.redis.crc16`) against real Redis Clusters on
//! loopback: slots and hash tags checked against the server's own, routing, MOVED and ASK
//! from a real slot migration, pub/sub, auth, and a master dying under the client.

use crate::support::*;

/// The config line naming the cluster's ports for the Lua test.
fn ports_line(cluster: &crate::servers::RedisCluster) -> String {
    let ports: Vec<String> = cluster.ports.iter().map(u16::to_string).collect();
    format!("redis_cluster = \"{}\"", ports.join(" "))
}

#[test]
fn the_cluster_client_routes_by_slot_and_follows_moved_and_ask() {
    let cluster = crate::servers::redis_cluster(3, 0, None);
    run_skynet_style("test_redis_cluster", &ports_line(&cluster));
}

#[test]
fn the_cluster_client_logs_in_reads_from_a_replica_and_gives_up_on_a_dead_master() {
    let cluster = crate::servers::redis_cluster(3, 1, Some("foobared"));
    let log = run_skynet_style("test_redis_cluster_failover", &ports_line(&cluster));
    assert!(
        log.contains("rediscluster: no node answered CLUSTER SLOTS"),
        "a client that cannot read the slot map says so:\n{log}"
    );
}
