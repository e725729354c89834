//! The console's views of a reading, as text the host writes itself (the `TOP`, `TENANTS`
//! and `STATS` commands; `debug_console` shows them as `top`, `tenants` and `stat`): no
//! guest is asked, so a wedged service cannot hold them up. An untrusted tenant's service
//! sees its own tenant only.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::snapshot::{busy_seconds, rank, Rank, TenantFigures, RECENT};
use crate::shared::NodeShared;
use crate::tenant::Tenant;

/// The most services `top` lists.
pub const MAX_TOP: usize = 1000;

/// `top [cpu|queue|memory] [n] [seconds]`: the `n` (default 10) services that used the most
/// CPU over the last `seconds` (1 to 10, default 10), or have the longest mailboxes, or the
/// most memory; `only`: of that tenant.
///
/// # Errors
/// What is wrong with the arguments.
pub fn top(node: &NodeShared, args: &str, only: Option<&Arc<Tenant>>) -> Result<String, String> {
    let mut words = args.split_whitespace();
    let by = match words.next() {
        None => Rank::Busy,
        Some(word) => {
            Rank::parse(word).ok_or_else(|| format!("`{word}`: rank by cpu, queue or memory"))?
        }
    };
    let count = match words.next() {
        None => 10,
        Some(word) => word
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_TOP).contains(n))
            .ok_or_else(|| format!("`{word}`: a count of services, 1 to {MAX_TOP}"))?,
    };
    let span = match words.next() {
        None => RECENT,
        Some(word) => word
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=RECENT.as_secs()).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{word}`: seconds, 1 to {}", RECENT.as_secs()))?,
    };
    let services = node.router.list();
    let (recent, covered) = node.metrics.recent_busy(span);
    let ranked = rank(&services, &recent, covered, by, count, only);
    let seen = services
        .iter()
        .filter(|(_, s)| only.is_none_or(|t| Arc::ptr_eq(t, s.tenant())))
        .count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} of {} services by {} (cpu: share of one worker over the last {:.0} s, sampled every 10 ms)",
        ranked.len(),
        seen,
        match by {
            Rank::Busy => "cpu",
            Rank::Queue => "mailbox length",
            Rank::Memory => "memory",
        },
        covered.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "{:<10} {:<12} {:>6} {:>8} {:>10} {:>12} {:>10}  code",
        "address", "tenant", "cpu%", "mqlen", "queued", "memory", "messages"
    );
    for s in &ranked {
        let _ = writeln!(
            out,
            ":{:08x} {:<12} {:>6.1} {:>8} {:>10} {:>12} {:>10}  {} {}",
            s.handle.0,
            s.tenant,
            s.busy_share * 100.0,
            s.queue.0,
            size(s.queue.1),
            size(s.memory),
            s.received,
            s.module,
            s.args
        );
    }
    Ok(out)
}

/// `tenants`: every tenant's usage against its limits (`only`: that tenant's).
pub fn tenants(node: &NodeShared, only: Option<&Arc<Tenant>>) -> String {
    let snapshot = super::snapshot::take(node, 0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<7} {:>13} {:>21} {:>19} {:>13} {:>15} {:>10} {:>9} {:>8}",
        "tenant",
        "trusted",
        "services",
        "memory",
        "queued",
        "sockets",
        "timers",
        "cpu (s)",
        "refused",
        "faults"
    );
    for tenant in snapshot
        .tenants
        .iter()
        .filter(|t| only.is_none_or(|only| only.name() == t.name))
    {
        let _ = writeln!(out, "{}", tenant_line(tenant));
    }
    out
}

/// One line of [`tenants`].
fn tenant_line(t: &TenantFigures) -> String {
    let of = |used: String, limit: Option<String>| match limit {
        Some(limit) => format!("{used}/{limit}"),
        None => used,
    };
    let refused: u64 = t.refusals.iter().map(|(_, n)| n).sum();
    let faults: u64 = t.faults.iter().map(|(_, n)| n).sum();
    format!(
        "{:<12} {:<7} {:>13} {:>21} {:>19} {:>13} {:>15} {:>10.2} {:>9} {:>8}",
        t.name,
        if t.trusted { "yes" } else { "no" },
        of(t.services.0.to_string(), Some(t.services.1.to_string())),
        of(size(t.memory.0), t.memory.1.map(size)),
        of(
            format!("{} ({})", t.queued, size(t.queued_bytes.0)),
            t.queued_bytes.1.map(size)
        ),
        of(t.sockets.0.to_string(), Some(t.sockets.1.to_string())),
        of(t.timers.0.to_string(), t.timers.1.map(|n| n.to_string())),
        t.busy_seconds,
        refused,
        faults
    )
}

/// `stat`: one line per service, `:address mqlen=N message=N cpu=S busy=S`, from the host's
/// counters (`cpu` with `profile = true` only, as skynet's; `busy` sampled always);
/// `only`: that tenant's services.
pub fn stats(node: &NodeShared, only: Option<&Arc<Tenant>>) -> String {
    let mut out = String::new();
    for (handle, service) in node.router.list() {
        if only.is_some_and(|t| !Arc::ptr_eq(t, service.tenant())) {
            continue;
        }
        let stats = &service.stats;
        let _ = writeln!(
            out,
            ":{:08x} mqlen={} message={} cpu={:.6} busy={:.2} tenant={}",
            handle.0,
            service.queue_len(),
            stats.messages.load(Ordering::Relaxed),
            stats.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9,
            busy_seconds(stats.busy_ns.load(Ordering::Relaxed)),
            service.tenant().name()
        );
    }
    out
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(256 << 20), "256.0 MiB");
        assert_eq!(size(1 << 30), "1.0 GiB");
    }

    #[test]
    fn a_tenant_line_shows_usage_against_limits_and_none_where_there_is_no_limit() {
        let tenant = TenantFigures {
            name: "game".into(),
            services: (3, 1000),
            memory: (2 << 20, Some(1 << 30)),
            queued: 5,
            queued_bytes: (160, None),
            sockets: (1, 1000),
            timers: (2, Some(100_000)),
            refusals: vec![("memory", 2), ("denied", 1)],
            faults: vec![("cpu", 1)],
            ..TenantFigures::default()
        };
        let line = tenant_line(&tenant);
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "game", "no", "3/1000", "2.0", "MiB/1.0", "GiB", "5", "(160", "B)", "1/1000",
                "2/100000", "0.00", "3", "1"
            ]
        );
    }
}
