//! skynet's cluster wire format (`lualib-src/lua-cluster.c`; docs/cluster.md), byte for byte:
//! the codec of skywasm's cluster gateway, in a crate of its own so it can be fuzzed
//! (`fuzz/`) without the host.
//!
//! Every packet is a 2-byte big-endian length and that many bytes; integers inside are
//! little-endian. Requests go from the calling node to the called one, responses back.
//! A payload of [`MULTI_PART`] bytes or more is split into parts — a request at `>=`, a
//! reply only at `>`, as skynet does.
//!
//! Decoding is check-then-parse: a packet is validated whole before anything is built from
//! it, and any malformed packet is an error (the connection is then closed), never a panic.
//! The assemblers bound what a peer can make us hold: the size of one reassembled payload
//! and the number of multipart payloads in progress.

use std::collections::HashMap;

/// Payloads of this many bytes are split into parts (skynet's `MULTI_PART`).
pub const MULTI_PART: usize = 0x8000;

/// The largest packet body (the 2-byte length).
pub const MAX_PACKET: usize = 0xffff;

/// Multipart payloads in progress at once on one connection, before it is refused.
pub const MAX_PENDING_PARTS: usize = 256;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A service handle of the called node (0: the name query of `cluster.query`).
    Handle(u32),
    /// A name as sent: `@name` (the called node's cluster registry) or a skynet name.
    Name(String),
}

/// Why bytes from a peer are not a valid packet stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A packet too short for its kind, or of an unknown kind.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A payload over the configured limit (or over 4 GiB).
    #[error("payload of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// The declared or accumulated size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A part for a payload that was never announced, or parts that overrun their total.
    #[error("multipart error: {0}")]
    Parts(String),
}

fn malformed(what: impl Into<String>) -> FrameError {
    FrameError::Malformed(what.into())
}

/// Appends one packet: the 2-byte big-endian length, then `body`.
fn push_packet(out: &mut Vec<u8>, body: &[&[u8]]) {
    let len: usize = body.iter().map(|b| b.len()).sum();
    debug_assert!(len <= MAX_PACKET);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for piece in body {
        out.extend_from_slice(piece);
    }
}

/// The session a sender uses after one of skynet's packers ran with `session` (the packer
/// always returns `session + 1`, wrapping from 2^31-1 to 1; a sender keeps its session for a
/// single-packet push).
pub fn next_session(session: u32) -> u32 {
    if session >= i32::MAX as u32 {
        1
    } else {
        session + 1
    }
}

/// True when a request payload of `size` bytes is sent in parts.
pub fn request_is_multipart(size: usize) -> bool {
    size >= MULTI_PART
}

/// Appends the packets of a request: `msg` (a `skynet.pack` body) to `address`. `session`
/// is the request's (0 for a single-packet push; a multipart push carries a real one).
///
/// # Errors
/// [`FrameError::Malformed`] for a name that is empty or over 255 bytes,
/// [`FrameError::TooLarge`] for a payload of 4 GiB or more.
pub fn encode_request(
    address: &Address,
    session: u32,
    push: bool,
    msg: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let size = u32::try_from(msg.len()).map_err(|_| FrameError::TooLarge {
        size: msg.len(),
        limit: u32::MAX as usize,
    })?;
    let name = match address {
        Address::Handle(_) => None,
        Address::Name(name) if (1..=255).contains(&name.len()) => Some(name.as_bytes()),
        Address::Name(name) => {
            return Err(malformed(format!(
                "a name of {} bytes (1..=255 allowed)",
                name.len()
            )))
        }
    };
    let target = |kind_number: u8, kind_name: u8| -> (Vec<u8>, u8) {
        match (address, name) {
            (Address::Handle(handle), _) => (handle.to_le_bytes().to_vec(), kind_number),
            (_, Some(name)) => {
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(name.len() as u8);
                bytes.extend_from_slice(name);
                (bytes, kind_name)
            }
            (_, None) => unreachable!("a name address always has its bytes"),
        }
    };
    if !request_is_multipart(msg.len()) {
        let (target, kind) = target(0x00, 0x80);
        let session = if push { 0 } else { session };
        push_packet(out, &[&[kind], &target, &session.to_le_bytes(), msg]);
        return Ok(());
    }
    let (target, kind) = match push {
        false => target(0x01, 0x81),
        true => target(0x41, 0xc1),
    };
    push_packet(
        out,
        &[
            &[kind],
            &target,
            &session.to_le_bytes(),
            &size.to_le_bytes(),
        ],
    );
    push_parts(out, &session.to_le_bytes(), msg, 0x02, 0x03);
    Ok(())
}

/// Appends the parts of a multipart payload: middle parts of `MULTI_PART` bytes, then the
/// last (`1..=MULTI_PART` bytes), each `kind session bytes`.
fn push_parts(out: &mut Vec<u8>, session: &[u8; 4], msg: &[u8], middle: u8, last: u8) {
    let mut chunks = msg.chunks(MULTI_PART).peekable();
    while let Some(chunk) = chunks.next() {
        let kind = if chunks.peek().is_some() {
            middle
        } else {
            last
        };
        push_packet(out, &[&[kind], session, chunk]);
    }
}

/// Appends a trace tag packet (applies to the next request on the connection); tags over
/// `MULTI_PART` bytes are cut there.
pub fn encode_trace(tag: &[u8], out: &mut Vec<u8>) {
    let tag = &tag[..tag.len().min(MULTI_PART)];
    push_packet(out, &[&[0x04], tag]);
}

/// Appends the packets of a response: `Ok(msg)` (the callee's packed reply) or `Err(reason)`
/// (cut to `MULTI_PART` bytes).
///
/// # Errors
/// [`FrameError::TooLarge`] for a reply of 4 GiB or more.
pub fn encode_response(
    session: u32,
    result: Result<&[u8], &[u8]>,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let session = session.to_le_bytes();
    match result {
        Err(reason) => {
            let reason = &reason[..reason.len().min(MULTI_PART)];
            push_packet(out, &[&session, &[0], reason]);
        }
        Ok(msg) if msg.len() <= MULTI_PART => push_packet(out, &[&session, &[1], msg]),
        Ok(msg) => {
            let size = u32::try_from(msg.len()).map_err(|_| FrameError::TooLarge {
                size: msg.len(),
                limit: u32::MAX as usize,
            })?;
            push_packet(out, &[&session, &[2], &size.to_le_bytes()]);
            let mut chunks = msg.chunks(MULTI_PART).peekable();
            while let Some(chunk) = chunks.next() {
                let kind = if chunks.peek().is_some() { 3 } else { 4 };
                push_packet(out, &[&session, &[kind], chunk]);
            }
        }
    }
    Ok(())
}

/// Splits complete packets off the front of a byte stream.
#[derive(Debug, Default)]
pub struct PacketReader {
    buffer: Vec<u8>,
    start: usize,
}

impl PacketReader {
    /// An empty reader.
    pub fn new() -> PacketReader {
        PacketReader::default()
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete packet's body, if one is buffered.
    ///
    /// # Errors
    /// [`FrameError::Malformed`] for an empty packet (skynet never sends one).
    pub fn next_packet(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let available = &self.buffer[self.start..];
        if available.len() < 2 {
            self.compact();
            return Ok(None);
        }
        let len = u16::from_be_bytes([available[0], available[1]]) as usize;
        if len == 0 {
            return Err(malformed("an empty packet"));
        }
        if available.len() < 2 + len {
            self.compact();
            return Ok(None);
        }
        let body = available[2..2 + len].to_vec();
        self.start += 2 + len;
        Ok(Some(body))
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// A complete request, as the called node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where it goes.
    pub address: Address,
    /// The caller's session (0 for a single-packet push).
    pub session: u32,
    /// No reply wanted.
    pub push: bool,
    /// The `skynet.pack` body.
    pub msg: Vec<u8>,
    /// The trace tag sent just before it, if any.
    pub trace: Option<Vec<u8>>,
}

/// A multipart payload being reassembled.
#[derive(Debug)]
struct Partial<H> {
    header: H,
    total: usize,
    bytes: Vec<u8>,
}

/// Takes payloads in parts, bounded in size and count.
#[derive(Debug)]
struct Parts<H> {
    pending: HashMap<u32, Partial<H>>,
    limit: usize,
    /// Bytes of the payloads in progress, against `buffer_limit`.
    buffered: usize,
    buffer_limit: usize,
}

impl<H> Parts<H> {
    fn new(limit: usize, buffer_limit: usize) -> Parts<H> {
        Parts {
            pending: HashMap::new(),
            limit,
            buffered: 0,
            buffer_limit,
        }
    }

    fn begin(&mut self, session: u32, total: usize, header: H) -> Result<(), FrameError> {
        if total > self.limit {
            return Err(FrameError::TooLarge {
                size: total,
                limit: self.limit,
            });
        }
        if self.pending.len() >= MAX_PENDING_PARTS {
            return Err(FrameError::Parts(format!(
                "more than {MAX_PENDING_PARTS} multipart payloads in progress"
            )));
        }
        if self.pending.contains_key(&session) {
            return Err(FrameError::Parts(format!("session {session} began twice")));
        }
        self.pending.insert(
            session,
            Partial {
                header,
                total,
                // Grown as parts arrive: a peer's claim of a big total costs nothing yet.
                bytes: Vec::new(),
            },
        );
        Ok(())
    }

    /// Adds a part; the header and the whole payload when it was the last.
    fn add(
        &mut self,
        session: u32,
        part: &[u8],
        last: bool,
    ) -> Result<Option<(H, Vec<u8>)>, FrameError> {
        let Some(partial) = self.pending.get_mut(&session) else {
            return Err(FrameError::Parts(format!(
                "a part of session {session}, which began no payload"
            )));
        };
        if partial.bytes.len() + part.len() > partial.total {
            return Err(FrameError::Parts(format!(
                "parts of session {session} overrun its {} bytes",
                partial.total
            )));
        }
        if self.buffered + part.len() > self.buffer_limit {
            return Err(FrameError::Parts(format!(
                "more than {} bytes of multipart payloads in progress",
                self.buffer_limit
            )));
        }
        self.buffered += part.len();
        partial.bytes.extend_from_slice(part);
        if !last {
            return Ok(None);
        }
        let Some(done) = self.pending.remove(&session) else {
            return Ok(None);
        };
        self.buffered -= done.bytes.len();
        if done.bytes.len() != done.total {
            return Err(FrameError::Parts(format!(
                "session {session} ended with {} of its {} bytes",
                done.bytes.len(),
                done.total
            )));
        }
        Ok(Some((done.header, done.bytes)))
    }
}

/// The called node's side of a connection: packets in, complete requests out.
#[derive(Debug)]
pub struct RequestAssembler {
    parts: Parts<(Address, bool)>,
    trace: Option<Vec<u8>>,
}

impl RequestAssembler {
    /// An assembler refusing payloads over `limit` bytes (with up to
    /// [`MAX_PENDING_PARTS`] of them in progress at once).
    pub fn new(limit: usize) -> RequestAssembler {
        Self::with_limits(limit, limit.saturating_mul(MAX_PENDING_PARTS))
    }

    /// An assembler refusing payloads over `limit` bytes, and parts that would take the
    /// payloads in progress together past `in_progress` bytes. skynet writes the parts of
    /// one request together, so `limit` suffices for skynet peers.
    pub fn with_limits(limit: usize, in_progress: usize) -> RequestAssembler {
        RequestAssembler {
            parts: Parts::new(limit, in_progress),
            trace: None,
        }
    }

    /// Takes one packet body; a request when it completed one.
    ///
    /// # Errors
    /// A [`FrameError`] for anything skynet's packers would not produce, or over the limits;
    /// the connection should then be closed.
    pub fn packet(&mut self, body: &[u8]) -> Result<Option<Request>, FrameError> {
        let Some((&kind, rest)) = body.split_first() else {
            return Err(malformed("an empty packet"));
        };
        match kind {
            0x00 | 0x01 | 0x41 => {
                let (fixed, what) = if kind == 0x00 {
                    (8, "request")
                } else {
                    (12, "header")
                };
                if rest.len() < fixed || (kind != 0x00 && rest.len() != fixed) {
                    return Err(malformed(format!(
                        "a {what} of {} bytes (kind {kind:#04x})",
                        body.len()
                    )));
                }
                let address = Address::Handle(u32_at(rest, 0));
                let session = u32_at(rest, 4);
                self.begin_or_finish(kind, address, session, &rest[8..])
            }
            0x80 | 0x81 | 0xc1 => {
                let Some((&name_len, rest)) = rest.split_first() else {
                    return Err(malformed("a name request without its name"));
                };
                let name_len = name_len as usize;
                let fixed = name_len + if kind == 0x80 { 4 } else { 8 };
                if name_len == 0 || rest.len() < fixed || (kind != 0x80 && rest.len() != fixed) {
                    return Err(malformed(format!(
                        "a name request of {} bytes with a name of {name_len} (kind {kind:#04x})",
                        body.len()
                    )));
                }
                let name = std::str::from_utf8(&rest[..name_len])
                    .map_err(|_| malformed("a name that is not UTF-8"))?;
                let address = Address::Name(name.to_string());
                let session = u32_at(rest, name_len);
                self.begin_or_finish(kind & 0x7f, address, session, &rest[name_len + 4..])
            }
            0x02 | 0x03 => {
                if rest.len() < 4 {
                    return Err(malformed("a part without its session"));
                }
                let session = u32_at(rest, 0);
                let done = self.parts.add(session, &rest[4..], kind == 0x03)?;
                Ok(done.map(|((address, push), msg)| Request {
                    address,
                    session,
                    push,
                    msg,
                    trace: self.trace.take(),
                }))
            }
            0x04 => {
                self.trace = Some(rest.to_vec());
                Ok(None)
            }
            other => Err(malformed(format!("unknown request kind {other:#04x}"))),
        }
    }

    /// A single-packet request (kind 0) completes at once; a header (1: call, 0x41: push)
    /// begins a multipart one, whose total size follows the session.
    fn begin_or_finish(
        &mut self,
        kind: u8,
        address: Address,
        session: u32,
        rest: &[u8],
    ) -> Result<Option<Request>, FrameError> {
        if kind == 0x00 {
            if rest.len() > self.parts.limit {
                return Err(FrameError::TooLarge {
                    size: rest.len(),
                    limit: self.parts.limit,
                });
            }
            return Ok(Some(Request {
                address,
                session,
                push: session == 0,
                msg: rest.to_vec(),
                trace: self.trace.take(),
            }));
        }
        let total = u32_at(rest, 0) as usize;
        self.parts.begin(session, total, (address, kind == 0x41))?;
        Ok(None)
    }
}

/// What came back for a request.
pub type Reply = Result<Vec<u8>, Vec<u8>>;

/// The calling node's side of a connection: packets in, complete responses out.
#[derive(Debug)]
pub struct ResponseAssembler {
    parts: Parts<()>,
}

impl ResponseAssembler {
    /// An assembler refusing replies over `limit` bytes.
    pub fn new(limit: usize) -> ResponseAssembler {
        ResponseAssembler {
            parts: Parts::new(limit, limit.saturating_mul(MAX_PENDING_PARTS)),
        }
    }

    /// Takes one packet body; `(session, reply)` when it completed one (`Err` carries the
    /// remote's reason).
    ///
    /// # Errors
    /// A [`FrameError`] for a malformed packet or over the limits.
    pub fn packet(&mut self, body: &[u8]) -> Result<Option<(u32, Reply)>, FrameError> {
        if body.len() < 5 {
            return Err(malformed(format!("a response of {} bytes", body.len())));
        }
        let session = u32_at(body, 0);
        let data = &body[5..];
        match body[4] {
            0 => Ok(Some((session, Err(data.to_vec())))),
            1 => {
                if data.len() > self.parts.limit {
                    return Err(FrameError::TooLarge {
                        size: data.len(),
                        limit: self.parts.limit,
                    });
                }
                Ok(Some((session, Ok(data.to_vec()))))
            }
            2 => {
                if data.len() != 4 {
                    return Err(malformed("a multipart reply header without its size"));
                }
                self.parts.begin(session, u32_at(data, 0) as usize, ())?;
                Ok(None)
            }
            kind @ (3 | 4) => Ok(self
                .parts
                .add(session, data, kind == 4)?
                .map(|((), msg)| (session, Ok(msg)))),
            other => Err(malformed(format!("unknown response type {other}"))),
        }
    }
}

#[cfg(test)]
mod tests;
