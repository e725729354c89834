//! Logging: the `logger` service (skynet's `service_logger.c`) and per-service message logs
//! (`LOGON`/`LOGOFF`, skynet's `skynet_log.c`).
//!
//! The logger receives PTYPE_TEXT lines from any service and writes `[:0000000a] text`, to
//! stdout or, with `logger = "file"`, appended to that file with a `dd/mm/yy HH:MM:SS.cc`
//! local-time prefix. A PTYPE_SYSTEM message (sent on SIGHUP) reopens the file, so log
//! rotation works as with skynet. Unlike skynet's, which flushes every line, it writes the
//! lines of a burst together, when its queue is empty: nothing waits longer than the lines
//! queued behind it, and a burst costs one system call.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use skywasm_abi::{ptype, Handle};

use crate::mq::Message;
use crate::service::{Behavior, Fault, Service, ServiceCore};
use crate::shared::NodeShared;
use crate::sync::lock;

/// Most bytes of a guest-chosen text (a module name, arguments, a key, a tag) a host log
/// line shows.
pub const SHOWN_LIMIT: usize = 256;

/// Most bytes of a line the host logs: a safety net under [`Shown`] for whatever else a
/// host line carries (an init's error and its traceback).
pub const HOST_LINE_LIMIT: usize = 4 << 10;

/// A guest-chosen text as a host log line shows it: control characters escaped (a guest
/// cannot forge a line), and cut after [`SHOWN_LIMIT`] bytes with the size it had.
pub struct Shown<'a>(pub &'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0;
        let shown = prefix(text, SHOWN_LIMIT);
        for c in shown.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if shown.len() < text.len() {
            write!(f, "...({} bytes)", text.len())?;
        }
        Ok(())
    }
}

/// `text` cut after `limit` bytes (at a character boundary), saying how long it was.
pub(crate) fn cut(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= limit {
        return text.into();
    }
    format!("{} ...({} bytes, cut)", prefix(text, limit), text.len()).into()
}

/// The longest start of `text` of at most `limit` bytes that ends on a character boundary.
pub(crate) fn prefix(text: &str, limit: usize) -> &str {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

enum Output {
    Stdout,
    File(File),
}

/// Bytes of formatted lines the logger keeps, while more lines wait in its queue, before it
/// writes them anyway.
const BATCH_LIMIT: usize = 64 << 10;

/// The built-in `logger` service.
pub struct Logger {
    core: ServiceCore,
    path: Option<PathBuf>,
    output: Output,
    /// Formatted lines not yet written: the lines of a burst go out in one write, when the
    /// queue is empty (or at [`BATCH_LIMIT`]).
    pending: Vec<u8>,
    /// The time prefix of the last line, and the centisecond it stands for: formatting local
    /// time is the dearest part of a line, and a burst shares one.
    stamp: Option<(u64, String)>,
}

impl Logger {
    /// Starts a logger; `args` is a file path or empty for stdout. Registers `.logger`.
    ///
    /// # Errors
    /// The file cannot be opened, or `.logger` is already taken.
    pub fn start(core: ServiceCore, args: &str) -> Result<Box<dyn Behavior>, String> {
        let path = (!args.trim().is_empty()).then(|| PathBuf::from(args.trim()));
        let output = match &path {
            Some(path) => Output::File(open_append(path)?),
            None => Output::Stdout,
        };
        core.node
            .router
            .bind_name(".logger", core.handle())
            .map_err(|e| e.to_string())?;
        Ok(Box::new(Logger {
            core,
            path,
            output,
            pending: Vec::new(),
            stamp: None,
        }))
    }

    /// Appends one formatted line to the pending bytes.
    fn format_line(&mut self, source: Handle, text: &[u8]) {
        if matches!(self.output, Output::File(_)) {
            let now = self.core.node.clock.now();
            if self.stamp.as_ref().is_none_or(|(at, _)| *at != now) {
                let secs = self.core.node.clock.start_time() + now / 100;
                let prefix = format!(
                    "{}.{:02} ",
                    format_local_time(secs, "%d/%m/%y %H:%M:%S"),
                    now % 100
                );
                self.stamp = Some((now, prefix));
            }
            if let Some((_, prefix)) = &self.stamp {
                self.pending.extend_from_slice(prefix.as_bytes());
            }
        }
        // Writing to a Vec cannot fail.
        let _ = write!(self.pending, "[{source}] ");
        self.pending.extend_from_slice(text);
        self.pending.push(b'\n');
    }

    /// Writes the pending lines.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = match &mut self.output {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.pending).and_then(|()| out.flush())
            }
            Output::File(file) => file.write_all(&self.pending),
        };
        self.pending.clear();
        result
    }

    fn flush_or_complain(&mut self) {
        if let Err(e) = self.flush() {
            eprintln!(
                "[{}] logger: cannot write log lines: {e}",
                self.core.handle()
            );
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.flush_or_complain();
    }
}

impl Behavior for Logger {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, message: Message) -> Result<(), Fault> {
        match message.ptype as u32 {
            ptype::TEXT => {
                let dropped = self.core.node.log_dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let note = format!(
                        "({dropped} log lines dropped: the logger's backlog of {} bytes was \
                         full)",
                        self.core.node.config.log_backlog
                    );
                    self.format_line(Handle::NONE, note.as_bytes());
                }
                self.format_line(message.source, &message.data);
                if self.pending.len() >= BATCH_LIMIT || self.core.service().queue_len() == 0 {
                    self.flush_or_complain();
                }
            }
            ptype::SYSTEM => {
                self.flush_or_complain();
                if let Some(path) = &self.path {
                    match open_append(path) {
                        Ok(file) => self.output = Output::File(file),
                        Err(e) => eprintln!("[{}] logger: {e}", self.core.handle()),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn open_append(path: &PathBuf) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open log file {}: {e}", path.display()))
}

/// Formats UTC seconds as local time with a `strftime` pattern.
fn format_local_time(secs: u64, pattern: &str) -> String {
    let time = secs as libc::time_t;
    // SAFETY: `tm` is plain data; localtime_r fills it from `time` and returns null on error.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
        return secs.to_string();
    }
    let mut buf = [0u8; 64];
    let Ok(pattern) = std::ffi::CString::new(pattern) else {
        return secs.to_string();
    };
    // SAFETY: strftime writes at most buf.len() bytes, including the terminating NUL.
    let len = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), pattern.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Whether the `count`th refusal of a kind is logged: the first 16, then every doubling, so
/// a guest retrying in a loop cannot flood the log.
pub(crate) fn worth_logging(count: u64) -> bool {
    count <= 16 || count.is_power_of_two()
}

/// A service's message log (`LOGON`): the file, and whether it is open, so the message
/// path checks an atomic, not a lock.
#[derive(Debug, Default)]
pub(crate) struct MessageLog {
    file: std::sync::Mutex<Option<std::fs::File>>,
    on: std::sync::atomic::AtomicBool,
}

impl MessageLog {
    /// Closes the file, if open (the service ended).
    pub(crate) fn close(&self) {
        self.on.store(false, Ordering::Release);
        *lock(&self.file) = None;
    }
}

/// `LOGON`: starts logging every message of `service` to `<logpath>/<handle>.log`.
/// Returns false when `logpath` is not set or the file cannot be opened.
pub(crate) fn open_message_log(node: &NodeShared, service: &Service, by: Handle) -> bool {
    let Some(dir) = &node.config.logpath else {
        return false;
    };
    let message_log = service.message_log();
    let mut log = lock(&message_log.file);
    if log.is_some() {
        return true;
    }
    let path = dir.join(format!("{:08x}.log", service.handle().0));
    match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(mut file) => {
            node.log(by, &format!("Open log file {}", path.display()));
            let now = node.clock.now();
            let when =
                format_local_time(node.clock.start_time() + now / 100, "%a %b %e %H:%M:%S %Y");
            let _ = writeln!(file, "open time: {} {when}", now as u32);
            *log = Some(file);
            message_log.on.store(true, Ordering::Release);
            true
        }
        Err(e) => {
            node.log(by, &format!("Open log file {} fail: {e}", path.display()));
            false
        }
    }
}

/// `LOGOFF`: stops the message log of `service`.
pub(crate) fn close_message_log(node: &NodeShared, service: &Service, by: Handle) {
    let message_log = service.message_log();
    let mut log = lock(&message_log.file);
    if let Some(mut file) = log.take() {
        message_log.on.store(false, Ordering::Release);
        node.log(by, &format!("Close log file {}", service.handle()));
        let _ = writeln!(file, "close time: {}", node.clock.now() as u32);
    }
}

/// Writes one dispatched message to the service's message log, if `LOGON` is active:
/// `:source type session time hexbytes` (skynet's format).
pub(crate) fn record_message(node: &NodeShared, service: &Service, message: &Message) {
    let message_log = service.message_log();
    if !message_log.on.load(Ordering::Acquire) {
        return;
    }
    let mut log = lock(&message_log.file);
    if let Some(file) = log.as_mut() {
        let mut line = format!(
            ":{:08x} {} {} {} ",
            message.source.0,
            message.ptype,
            message.session,
            node.clock.now() as u32
        );
        for byte in message.data.iter() {
            line.push_str(&format!("{byte:02x}"));
        }
        line.push('\n');
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_text_in_a_host_line_is_escaped_and_cut() {
        assert_eq!(Shown("pong 1").to_string(), "pong 1");
        assert_eq!(
            Shown("a\n[:00000001] forged").to_string(),
            "a\\n[:00000001] forged"
        );
        let long = "é".repeat(200);
        let shown = Shown(&long).to_string();
        assert!(shown.ends_with("...(400 bytes)"), "{shown}");
        assert!(shown.len() <= SHOWN_LIMIT + 16);
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdef", 3), "abc ...(6 bytes, cut)");
    }
}
