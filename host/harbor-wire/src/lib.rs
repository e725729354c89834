//! skynet's harbor wire formats, byte for byte (shared/SKYNET.md §10): the codec of
//! skywasm's harbor, in a crate of its own so it is tested (and can be fuzzed) without the
//! host.
//!
//! Two formats:
//! * **Master ↔ slave** (`service/cmaster.lua`, `service/cslave.lua`): a one-byte length,
//!   then that many bytes of `skynet.packstring(letter, args...)`; a frame body is at most
//!   255 bytes. [`MasterMessage`] is one frame; [`MasterReader`] splits a byte stream.
//! * **Slave ↔ slave** (`service-src/service_harbor.c`): each side first writes one byte,
//!   its harbor id; then every message is a 4-byte big-endian length (its first byte must
//!   be 0, so under 16 MiB), the body, and a 12-byte big-endian trailer: the source, the
//!   type in the high 8 bits over the destination's low 24 bits, and the session.
//!   [`encode_remote`] writes one; [`LinkReader`] reads them.
//!
//! Decoding is check-then-parse: a frame is validated whole before anything is built from
//! it, and any malformed frame is an error (the connection is then closed), never a panic.
//! [`LinkReader`] bounds what a peer can make us hold to its limit.

use skywasm_pack::Value;

#[cfg(test)]
mod tests;

/// The largest master frame body (the one-byte length).
pub const MAX_MASTER_BODY: usize = 255;

/// The 12-byte trailer of a remote message (`struct remote_message_header`).
pub const TRAILER: usize = 12;

/// The largest link frame length (body and trailer): the length's first byte must be 0.
pub const MAX_LINK_FRAME: usize = 0x00ff_ffff;

/// The longest global name (skynet's `GLOBALNAME_LENGTH` less its NUL).
pub const GLOBAL_NAME_MAX: usize = 15;

/// The bits of a handle below the harbor id.
pub const HANDLE_MASK: u32 = 0x00ff_ffff;

/// Why bytes from a peer are not a valid frame, or a message cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A master frame that is not one of the seven messages, or a link frame too short
    /// for its trailer.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A frame over its format's limit (or over the reader's).
    #[error("frame of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

fn malformed(what: impl Into<String>) -> WireError {
    WireError::Malformed(what.into())
}

/// One master ↔ slave message (cmaster.lua's protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterMessage {
    /// `H id address`, slave → master: the slave's harbor id and where it listens.
    Handshake {
        /// The slave's harbor id (1..=255).
        id: u8,
        /// Its listen address for other slaves, `"host:port"`.
        address: String,
    },
    /// `W n`, master → a new slave: wait for `n` older slaves to connect.
    Wait(u32),
    /// `C id address`, master → older slaves: connect to the new slave.
    Connect {
        /// The new slave's harbor id.
        id: u8,
        /// Its listen address.
        address: String,
    },
    /// `R name handle`, slave → master: register a global name.
    Register {
        /// The global name.
        name: String,
        /// The service it names.
        handle: u32,
    },
    /// `N name handle`, master → slaves: a global name's service.
    Name {
        /// The global name.
        name: String,
        /// The service it names.
        handle: u32,
    },
    /// `Q name`, slave → master: which service is this global name? (answered with `N`
    /// only once the name is known).
    Query(String),
    /// `D id`, master → slaves: a slave is gone.
    Down(u8),
}

impl MasterMessage {
    /// The message as `skynet.packstring` values.
    fn values(&self) -> Vec<Value> {
        let s = |text: &str| Value::String(text.as_bytes().to_vec());
        let n = |n: i64| Value::Integer(n);
        match self {
            MasterMessage::Handshake { id, address } => {
                vec![s("H"), n(i64::from(*id)), s(address)]
            }
            MasterMessage::Wait(count) => vec![s("W"), n(i64::from(*count))],
            MasterMessage::Connect { id, address } => vec![s("C"), n(i64::from(*id)), s(address)],
            MasterMessage::Register { name, handle } => {
                vec![s("R"), s(name), n(i64::from(*handle))]
            }
            MasterMessage::Name { name, handle } => vec![s("N"), s(name), n(i64::from(*handle))],
            MasterMessage::Query(name) => vec![s("Q"), s(name)],
            MasterMessage::Down(id) => vec![s("D"), n(i64::from(*id))],
        }
    }

    /// Appends the message as one frame: its length byte, then its body.
    ///
    /// # Errors
    /// [`WireError::TooLarge`] when the body is over 255 bytes (a long address or name).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let body = skywasm_pack::pack(&self.values())
            .map_err(|e| malformed(format!("cannot pack: {e}")))?;
        if body.len() > MAX_MASTER_BODY {
            return Err(WireError::TooLarge {
                size: body.len(),
                limit: MAX_MASTER_BODY,
            });
        }
        out.push(body.len() as u8);
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Reads one frame body (without its length byte).
    ///
    /// # Errors
    /// [`WireError::Malformed`] for a body that is not packed values, an unknown letter, or
    /// arguments of the wrong kind or range.
    pub fn decode(body: &[u8]) -> Result<MasterMessage, WireError> {
        let values = skywasm_pack::unpack(body).map_err(|e| malformed(e.to_string()))?;
        let letter = match values.first() {
            Some(Value::String(letter)) if letter.len() == 1 => letter[0],
            other => return Err(malformed(format!("no message letter: {other:?}"))),
        };
        let text = |index: usize, what: &str| -> Result<String, WireError> {
            match values.get(index) {
                Some(Value::String(bytes)) => String::from_utf8(bytes.clone())
                    .map_err(|_| malformed(format!("{what} is not UTF-8"))),
                other => Err(malformed(format!(
                    "{what}: a string expected, not {other:?}"
                ))),
            }
        };
        let number = |index: usize, what: &str, max: u32| -> Result<u32, WireError> {
            match values.get(index) {
                Some(Value::Integer(n)) if (0..=i64::from(max)).contains(n) => Ok(*n as u32),
                other => Err(malformed(format!(
                    "{what}: 0..={max} expected, not {other:?}"
                ))),
            }
        };
        let harbor = |index: usize| -> Result<u8, WireError> {
            match number(index, "a harbor id", 255)? {
                0 => Err(malformed("harbor id 0")),
                id => Ok(id as u8),
            }
        };
        let arity = |count: usize| -> Result<(), WireError> {
            if values.len() == count {
                Ok(())
            } else {
                Err(malformed(format!(
                    "`{}` takes {} arguments, not {}",
                    letter as char,
                    count - 1,
                    values.len() - 1
                )))
            }
        };
        let message = match letter {
            b'H' => {
                arity(3)?;
                MasterMessage::Handshake {
                    id: harbor(1)?,
                    address: text(2, "an address")?,
                }
            }
            b'W' => {
                arity(2)?;
                MasterMessage::Wait(number(1, "a count", 255)?)
            }
            b'C' => {
                arity(3)?;
                MasterMessage::Connect {
                    id: harbor(1)?,
                    address: text(2, "an address")?,
                }
            }
            b'R' => {
                arity(3)?;
                MasterMessage::Register {
                    name: text(1, "a name")?,
                    handle: number(2, "a handle", u32::MAX)?,
                }
            }
            b'N' => {
                arity(3)?;
                MasterMessage::Name {
                    name: text(1, "a name")?,
                    handle: number(2, "a handle", u32::MAX)?,
                }
            }
            b'Q' => {
                arity(2)?;
                MasterMessage::Query(text(1, "a name")?)
            }
            b'D' => {
                arity(2)?;
                MasterMessage::Down(harbor(1)?)
            }
            other => return Err(malformed(format!("unknown message `{}`", other as char))),
        };
        Ok(message)
    }
}

/// Splits a master ↔ slave byte stream into messages.
#[derive(Debug, Default)]
pub struct MasterReader {
    buffer: Vec<u8>,
}

impl MasterReader {
    /// A reader with nothing buffered.
    pub fn new() -> MasterReader {
        MasterReader::default()
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until one has arrived.
    ///
    /// # Errors
    /// A malformed message ([`MasterMessage::decode`]); an empty frame is one too.
    pub fn next_message(&mut self) -> Result<Option<MasterMessage>, WireError> {
        let Some(&length) = self.buffer.first() else {
            return Ok(None);
        };
        let length = usize::from(length);
        if self.buffer.len() < 1 + length {
            return Ok(None);
        }
        let message = MasterMessage::decode(&self.buffer[1..1 + length]);
        self.buffer.drain(..1 + length);
        message.map(Some)
    }
}

/// Where a remote message comes from and goes, as its trailer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteHeader {
    /// The sender's full handle (its harbor id included).
    pub source: u32,
    /// The message type (`PTYPE_*`).
    pub ptype: u8,
    /// The destination's handle below its harbor id (the receiver adds its own id).
    pub destination: u32,
    /// The session (`u32` on the wire; skynet's sessions are `int`).
    pub session: u32,
}

/// Appends one remote message: its length, `body`, and the trailer.
///
/// # Errors
/// [`WireError::TooLarge`] when `body` and the trailer are over [`MAX_LINK_FRAME`].
pub fn encode_remote(
    header: &RemoteHeader,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let length = body.len() + TRAILER;
    if length > MAX_LINK_FRAME {
        return Err(WireError::TooLarge {
            size: length,
            limit: MAX_LINK_FRAME,
        });
    }
    out.reserve(4 + length);
    out.extend_from_slice(&(length as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&header.source.to_be_bytes());
    let destination = (u32::from(header.ptype) << 24) | (header.destination & HANDLE_MASK);
    out.extend_from_slice(&destination.to_be_bytes());
    out.extend_from_slice(&header.session.to_be_bytes());
    Ok(())
}

/// Reads remote messages from a slave ↔ slave link (after the peer's id byte).
#[derive(Debug)]
pub struct LinkReader {
    buffer: Vec<u8>,
    /// Start of the unread bytes in `buffer`.
    start: usize,
    limit: usize,
}

impl LinkReader {
    /// A reader refusing frames over `limit` bytes (body and trailer; at most
    /// [`MAX_LINK_FRAME`], as skynet).
    pub fn new(limit: usize) -> LinkReader {
        LinkReader {
            buffer: Vec::new(),
            start: 0,
            limit: limit.min(MAX_LINK_FRAME),
        }
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held for a message not yet whole.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next whole message: its header and body. `None` until one has arrived.
    ///
    /// # Errors
    /// [`WireError::TooLarge`] for a length over the limit (checked as soon as the length
    /// has arrived, before its bytes are awaited); [`WireError::Malformed`] for a frame
    /// shorter than its trailer.
    pub fn next_message(&mut self) -> Result<Option<(RemoteHeader, Vec<u8>)>, WireError> {
        let unread = &self.buffer[self.start..];
        if unread.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([unread[0], unread[1], unread[2], unread[3]]) as usize;
        if length > self.limit {
            return Err(WireError::TooLarge {
                size: length,
                limit: self.limit,
            });
        }
        if length < TRAILER {
            return Err(malformed(format!(
                "a frame of {length} bytes has no room for its 12-byte trailer"
            )));
        }
        if unread.len() < 4 + length {
            return Ok(None);
        }
        let frame = &unread[4..4 + length];
        let (body, trailer) = frame.split_at(length - TRAILER);
        let word = |i: usize| {
            u32::from_be_bytes([trailer[i], trailer[i + 1], trailer[i + 2], trailer[i + 3]])
        };
        let destination = word(4);
        let header = RemoteHeader {
            source: word(0),
            ptype: (destination >> 24) as u8,
            destination: destination & HANDLE_MASK,
            session: word(8),
        };
        let body = body.to_vec();
        self.start += 4 + length;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > (1 << 16) && self.start * 2 > self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        Ok(Some((header, body)))
    }
}
