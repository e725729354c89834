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
