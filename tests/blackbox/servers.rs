//! Real database servers for the drivers' tests, from Debian's packages (scripts/setup
//! installs them): each test starts its own on a free loopback port with its data in a
//! temporary directory, and it is stopped when the test's handle drops.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed on drop.
pub struct Server {
    /// Its loopback port.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now (the OS's choice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `program`, or a panic saying how to get it.
fn installed(program: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path.display().to_string();
        }
    }
    panic!("{program} is not installed: run scripts/setup (the README's test command does)");
}

/// Waits (bounded) until `port` accepts connections; panics with `what`'s log otherwise.
fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `redis-server` on `port` (a free one when `None`), requiring `password` when
/// given, keeping nothing on disk.
pub fn redis(port: Option<u16>, password: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = port.unwrap_or_else(free_port);
    let mut command = Command::new(installed("redis-server"));
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(password) = password {
        command.args(["--requirepass", password]);
    }
    let mut child = command.spawn().expect("redis-server starts");
    wait_listening(port, &mut child, "redis-server");
    Server {
        port,
        child,
        _dir: dir,
    }
}

/// Starts `mariadbd` on `port` (a free one when `None`) with a fresh data directory, an
/// account `root`@127.0.0.1 with `password` (mysql_native_password) and a database
/// `database`.
pub fn mariadb(port: Option<u16>, password: &str, database: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket = dir.path().join("sock");
    let status = Command::new(installed("mariadb-install-db"))
        .args(["--no-defaults", "--user=root", "--skip-test-db"])
        .args(["--auth-root-authentication-method=socket"])
        .arg(format!("--datadir={}", data.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mariadb-install-db runs");
    assert!(status.success(), "mariadb-install-db failed: {status}");
    let port = port.unwrap_or_else(free_port);
    let mut child = Command::new(installed("mariadbd"))
        .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
        .args(["--skip-name-resolve", "--innodb-buffer-pool-size=16M"])
        .arg(format!("--port={port}"))
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!(
            "--log-error={}",
            dir.path().join("error.log").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadbd starts");
    wait_listening(port, &mut child, "mariadbd");
    let setup = format!(
        "CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}'; \
         GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
         CREATE DATABASE `{database}`;"
    );
    let status = Command::new(installed("mariadb"))
        .args(["--no-defaults", "-uroot"])
        .arg(format!("--socket={}", socket.display()))
        .args(["-e", &setup])
        .status()
        .expect("the mariadb client runs");
    assert!(status.success(), "setting up the account failed: {status}");
    Server {
        port,
        child,
        _dir: dir,
    }
}

/// A test CA and a server certificate it signed, made now, as PEM files in a temporary
/// directory: `ca.pem`, `cert.pem` (the server's, then the CA's) and `key.pem`, for the
/// names given (host names, or addresses).
pub struct TestCa {
    /// Where the files are.
    pub dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes the CA and a certificate for `names`.
    pub fn new(names: &[&str]) -> TestCa {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skywasm test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(
            dir.path().join("cert.pem"),
            format!("{}{}", cert.pem(), ca.pem()),
        )
        .unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        TestCa { dir }
    }

    /// A file of it.
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A Redis Cluster of `redis-server`s on loopback, each killed on drop.
pub struct RedisCluster {
    /// The nodes' ports: the masters first, then the replicas.
    pub ports: Vec<u16>,
    _servers: Vec<Server>,
}

/// A port for a cluster node: free, and so is the one 10000 above it (the cluster bus).
/// Taken below the OS's ephemeral range (from 32768 on Linux), from a counter, so that
/// tests running at once do not pick the same one.
fn free_cluster_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        10_000 + (std::process::id() % 200) as u16 * 50,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 22_000, "no free port pair for a Redis Cluster node");
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// `redis-cli` against the node on `port` (as `password` when given), its output.
fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut command = Command::new(installed("redis-cli"));
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(password) = password {
        // (not `-a`: that prints a warning on every run)
        command.env("REDISCLI_AUTH", password);
    }
    let out = command.args(args).output().expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a Redis Cluster of `masters` masters, each with `replicas` replicas, requiring
/// `password` when given (replicas log in with it too), keeping nothing on disk; returns
/// once every node says `cluster_state:ok` and every replica is in sync with its master.
pub fn redis_cluster(masters: usize, replicas: usize, password: Option<&str>) -> RedisCluster {
    let ports: Vec<u16> = (0..masters * (1 + replicas))
        .map(|_| free_cluster_port())
        .collect();
    redis_cluster_on(&ports, replicas, password)
}

/// As [`redis_cluster`], on the given ports (masters first; `ports.len()` nodes in all).
pub fn redis_cluster_on(ports: &[u16], replicas: usize, password: Option<&str>) -> RedisCluster {
    let count = ports.len();
    let mut servers = Vec::with_capacity(count);
    for &port in ports {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(installed("redis-server"));
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--cluster-enabled", "yes"])
            // (a replica's first sync would otherwise wait 5 s for more replicas)
            .args(["--repl-diskless-sync-delay", "0"])
            // (what the tests check is the client's handling of a dead node, not a
            // failover that would race with it)
            .args(["--cluster-node-timeout", "60000"])
            .arg("--cluster-config-file")
            .arg(format!("nodes-{port}.conf"))
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = password {
            command.args(["--requirepass", password, "--masterauth", password]);
        }
        let mut child = command.spawn().expect("redis-server starts");
        wait_listening(port, &mut child, "redis-server (cluster)");
        servers.push(Server {
            port,
            child,
            _dir: dir,
        });
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let mut create = Command::new(installed("redis-cli"));
    create.arg("--cluster").arg("create");
    for port in &ports {
        create.arg(format!("127.0.0.1:{port}"));
    }
    create
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .stdin(Stdio::null());
    if let Some(password) = password {
        create.env("REDISCLI_AUTH", password);
    }
    let out = create.output().expect("redis-cli --cluster create runs");
    assert!(
        out.status.success(),
        "redis-cli --cluster create failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // (--cluster create returns once the nodes agree on the configuration; the state and
    // the replicas' sync come after)
    let deadline = Instant::now() + Duration::from_secs(60);
    for &port in &ports {
        loop {
            let info = redis_cli(port, password, &["cluster", "info"]);
            let replication = redis_cli(port, password, &["info", "replication"]);
            let ready = info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_known_nodes:{count}"))
                && (!replication.contains("role:slave")
                    || replication.contains("master_link_status:up"))
                && (!replication.contains("role:master")
                    || replication.contains(&format!("connected_slaves:{replicas}")));
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster node on {port} is not ready:\n{info}\n{replication}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    RedisCluster {
        ports,
        _servers: servers,
    }
}
