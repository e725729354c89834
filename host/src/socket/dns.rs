//! Host-name lookups for services (`socket_resolve`, skynet.dns): on tokio's blocking pool
//! (getaddrinfo: /etc/hosts, then the system's DNS servers), so no worker waits, a bounded
//! number at a time node-wide, each bounded in time. The node's `dns_hosts` file (hosts(5)
//! format) is consulted first: names an operator pins, read at each lookup.

use std::net::IpAddr;
use std::time::Duration;

/// Lookups running at once in the node; more wait their turn (asynchronously).
const CONCURRENT_LOOKUPS: usize = 32;
/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `dns_hosts` file read.
const MAX_HOSTS_FILE: u64 = 1 << 20;

static LOOKUPS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| {
        std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_LOOKUPS))
    });

/// True for what can be a host name (RFC 1123 labels, 253 bytes at most) or a numeric
/// address: anything else is refused before a lookup.
pub(crate) fn valid_name(name: &str) -> bool {
    if super::numeric_ip(name).is_some() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The addresses of `name` in hosts(5) text: IPv6 ones when `ipv6`, else IPv4 ones.
fn in_hosts(text: &str, name: &str, ipv6: bool) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if ip.is_ipv6() == ipv6
            && words.any(|alias| alias.eq_ignore_ascii_case(name))
            && !found.contains(&ip)
        {
            found.push(ip);
        }
    }
    found
}

/// Looks `name` up: a numeric address as itself, then the `hosts_file`, then the system's
/// resolver. IPv6 addresses when `ipv6`, else IPv4; at least one, or why not.
pub(super) async fn lookup(
    name: &str,
    ipv6: bool,
    hosts_file: Option<&str>,
) -> Result<Vec<IpAddr>, String> {
    if let Some(ip) = super::numeric_ip(name) {
        return if ip.is_ipv6() == ipv6 {
            Ok(vec![ip])
        } else {
            Err(format!(
                "{name}: not an IPv{} address",
                if ipv6 { 6 } else { 4 }
            ))
        };
    }
    if let Some(path) = hosts_file {
        let text = read_hosts(path)
            .await
            .map_err(|e| format!("dns_hosts {path}: {e}"))?;
        let found = in_hosts(&text, name, ipv6);
        if !found.is_empty() {
            return Ok(found);
        }
    }
    // One deadline for the wait for a turn and the lookup; the turn is held by the blocking
    // thread itself, so a lookup that outlives the deadline still counts against the 32
    // (getaddrinfo cannot be cancelled) and threads never pile up.
    let lookup = async {
        let turn = LOOKUPS
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the resolver is closed".to_string())?;
        let owned = name.to_string();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            std::net::ToSocketAddrs::to_socket_addrs(&(owned.as_str(), 0))
                .map(Iterator::collect::<Vec<_>>)
        })
        .await
        .map_err(|e| format!("{name}: {e}"))?
        .map_err(|e| format!("{name}: {e}"))
    };
    let addresses = tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
        .await
        .map_err(|_| format!("{name}: the lookup timed out"))??;
    let mut found = Vec::new();
    for address in addresses {
        let ip = address.ip();
        if ip.is_ipv6() == ipv6 && !found.contains(&ip) {
            found.push(ip);
        }
    }
    if found.is_empty() {
        return Err(format!(
            "{name}: no IPv{} address",
            if ipv6 { 6 } else { 4 }
        ));
    }
    Ok(found)
}

/// The `dns_hosts` file: a regular file only (a FIFO would hold the thread), at most 1 MiB,
/// read within the lookup's time.
async fn read_hosts(path: &str) -> std::io::Result<String> {
    let path = path.to_string();
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut text = String::new();
        file.take(MAX_HOSTS_FILE).read_to_string(&mut text)?;
        Ok(text)
    });
    tokio::time::timeout(LOOKUP_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::other("reading it timed out"))?
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_lookup() {
        for good in [
            "localhost",
            "example.com",
            "a-b.c_d.org.",
            "127.0.0.1",
            "::1",
            "[::1]",
        ] {
            assert!(valid_name(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            ".",
            "a..b",
            "-a.com",
            "a-.com",
            "sp ace.com",
            "a/b",
            &long,
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_hosts_file_pins_names_by_family() {
        let text =
            "# comment\n127.0.0.1 game.local alias # trailing\n::1 game.local\n10.0.0.2 other\n";
        assert_eq!(
            in_hosts(text, "GAME.local", false),
            ["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            in_hosts(text, "game.local", true),
            ["::1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(in_hosts(text, "alias", false).len(), 1);
        assert!(in_hosts(text, "nowhere", false).is_empty());
    }

    #[test]
    fn lookups_answer_numbers_files_and_the_system() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(lookup("10.1.2.3", false, None).await.unwrap().len(), 1);
            assert!(lookup("10.1.2.3", true, None).await.is_err());
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("hosts");
            std::fs::write(&file, "192.0.2.7 pinned.example\n").unwrap();
            let path = file.to_str().unwrap();
            assert_eq!(
                lookup("pinned.example", false, Some(path)).await.unwrap(),
                ["192.0.2.7".parse::<IpAddr>().unwrap()]
            );
            let localhost = lookup("localhost", false, Some(path)).await.unwrap();
            assert!(localhost.iter().all(IpAddr::is_loopback), "{localhost:?}");
            assert!(lookup("nothing.invalid", false, None).await.is_err());
            let missing = lookup("x.example", false, Some("/nonexistent/hosts")).await;
            assert!(missing
                .unwrap_err()
                .contains("dns_hosts /nonexistent/hosts"));
        });
    }
}
