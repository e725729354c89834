//! The Lua library and services compiled into snlua, found before any search path so that a
//! skynet config pointing into a skynet tree still gets this implementation.

/// Built-in modules (`require`), by module name.
const MODULES: &[(&str, &str)] = &[
    ("skynet", include_str!("../lualib/skynet.lua")),
    (
        "skynet.cluster",
        include_str!("../lualib/skynet/cluster.lua"),
    ),
    (
        "skynet.codecache",
        include_str!("../lualib/skynet/codecache.lua"),
    ),
    (
        "skynet.coroutine",
        include_str!("../lualib/skynet/coroutine.lua"),
    ),
    (
        "skynet.datacenter",
        include_str!("../lualib/skynet/datacenter.lua"),
    ),
    ("skynet.debug", include_str!("../lualib/skynet/debug.lua")),
    ("skynet.dns", include_str!("../lualib/skynet/dns.lua")),
    ("skynet.harbor", include_str!("../lualib/skynet/harbor.lua")),
    ("skynet.inject", include_str!("../lualib/skynet/inject.lua")),
    (
        "skynet.manager",
        include_str!("../lualib/skynet/manager.lua"),
    ),
    ("skynet.memory", include_str!("../lualib/skynet/memory.lua")),
    ("skynet.mqueue", include_str!("../lualib/skynet/mqueue.lua")),
    (
        "skynet.multicast",
        include_str!("../lualib/skynet/multicast.lua"),
    ),
    (
        "skynet.netpack",
        include_str!("../lualib/skynet/netpack.lua"),
    ),
    // skynet's older scripts require it under its C module's name
    ("netpack", include_str!("../lualib/skynet/netpack.lua")),
    ("skynet.queue", include_str!("../lualib/skynet/queue.lua")),
    ("skynet.socket", include_str!("../lualib/skynet/socket.lua")),
    (
        "skynet.socketchannel",
        include_str!("../lualib/skynet/socketchannel.lua"),
    ),
    (
        "snax.gateserver",
        include_str!("../lualib/snax/gateserver.lua"),
    ),
    (
        "skynet.service",
        include_str!("../lualib/skynet/service.lua"),
    ),
    ("skynet.snax", include_str!("../lualib/skynet/snax.lua")),
    (
        "snax.interface",
        include_str!("../lualib/snax/interface.lua"),
    ),
    ("snax.hotfix", include_str!("../lualib/snax/hotfix.lua")),
    (
        "skynet.sharedata",
        include_str!("../lualib/skynet/sharedata.lua"),
    ),
    (
        "skynet.datasheet",
        include_str!("../lualib/skynet/datasheet/init.lua"),
    ),
    (
        "skynet.datasheet.builder",
        include_str!("../lualib/skynet/datasheet/builder.lua"),
    ),
    (
        "skywasm.shareproxy",
        include_str!("../lualib/skywasm/shareproxy.lua"),
    ),
    (
        "skywasm.shareserver",
        include_str!("../lualib/skywasm/shareserver.lua"),
    ),
    (
        "skynet.sharetable",
        include_str!("../lualib/skynet/sharetable.lua"),
    ),
    ("skynet.stm", include_str!("../lualib/skynet/stm.lua")),
    (
        "skynet.sharemap",
        include_str!("../lualib/skynet/sharemap.lua"),
    ),
    ("skywasm.files", include_str!("../lualib/skywasm/files.lua")),
    ("md5", include_str!("../lualib/md5.lua")),
    ("http.url", include_str!("../lualib/http/url.lua")),
    ("http.internal", include_str!("../lualib/http/internal.lua")),
    ("http.httpd", include_str!("../lualib/http/httpd.lua")),
    ("http.httpc", include_str!("../lualib/http/httpc.lua")),
    (
        "http.tlshelper",
        include_str!("../lualib/http/tlshelper.lua"),
    ),
    (
        "http.websocket",
        include_str!("../lualib/http/websocket.lua"),
    ),
    (
        "http.sockethelper",
        include_str!("../lualib/http/sockethelper.lua"),
    ),
    ("sproto", include_str!("../lualib/sproto.lua")),
    ("sprotoparser", include_str!("../lualib/sprotoparser.lua")),
    ("sprotoloader", include_str!("../lualib/sprotoloader.lua")),
    (
        "skynet.db.mysql",
        include_str!("../lualib/skynet/db/mysql.lua"),
    ),
    (
        "skynet.db.mongo",
        include_str!("../lualib/skynet/db/mongo.lua"),
    ),
    (
        "skynet.db.mongo.transaction",
        include_str!("../lualib/skynet/db/mongo/transaction.lua"),
    ),
    (
        "skynet.db.redis",
        include_str!("../lualib/skynet/db/redis.lua"),
    ),
    (
        "skynet.db.redis.cluster",
        include_str!("../lualib/skynet/db/redis/cluster.lua"),
    ),
    (
        "skynet.db.redis.crc16",
        include_str!("../lualib/skynet/db/redis/crc16.lua"),
    ),
    (
        "skynet.require",
        include_str!("../lualib/skynet/require.lua"),
    ),
];

/// Built-in service scripts (`services/lua`), by service name.
const SERVICES: &[(&str, &str)] = &[
    (
        "bootstrap",
        include_str!("../../services/lua/bootstrap.lua"),
    ),
    ("cdummy", include_str!("../../services/lua/cdummy.lua")),
    (
        "clusterproxy",
        include_str!("../../services/lua/clusterproxy.lua"),
    ),
    (
        "debug_console",
        include_str!("../../services/lua/debug_console.lua"),
    ),
    (
        "datacenterd",
        include_str!("../../services/lua/datacenterd.lua"),
    ),
    ("gate", include_str!("../../services/lua/gate.lua")),
    ("launcher", include_str!("../../services/lua/launcher.lua")),
    (
        "multicastd",
        include_str!("../../services/lua/multicastd.lua"),
    ),
    (
        "service_cell",
        include_str!("../../services/lua/service_cell.lua"),
    ),
    (
        "sharedatad",
        include_str!("../../services/lua/sharedatad.lua"),
    ),
    (
        "datasheetd",
        include_str!("../../services/lua/datasheetd.lua"),
    ),
    (
        "sharetabled",
        include_str!("../../services/lua/sharetabled.lua"),
    ),
    (
        "service_mgr",
        include_str!("../../services/lua/service_mgr.lua"),
    ),
    (
        "service_provider",
        include_str!("../../services/lua/service_provider.lua"),
    ),
    ("snaxd", include_str!("../../services/lua/snaxd.lua")),
];

/// The source of a built-in module or service (`kind` is "module" or "service").
pub(crate) fn find(kind: &[u8], name: &[u8]) -> Option<(&'static str, &'static str)> {
    let table = match kind {
        b"module" => MODULES,
        b"service" => SERVICES,
        _ => return None,
    };
    table
        .iter()
        .find(|(builtin, _)| builtin.as_bytes() == name)
        .copied()
}
