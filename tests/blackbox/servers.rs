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
