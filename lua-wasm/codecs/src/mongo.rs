//! The MongoDB wire messages skynet's `skynet.mongo.driver` builds and reads: OP_MSG with
//! one body section, no checksum.

use std::fmt;
use std::ops::Range;

/// OP_MSG's opcode.
pub const OP_MSG: i32 = 2013;
/// The flag a server sets when more replies follow without a request.
pub const MORE_TO_COME: i32 = 1 << 1;
const CHECKSUM_PRESENT: i32 = 1;
/// The largest message a server sends (MongoDB's `maxMessageSizeBytes`).
pub const MAX_MESSAGE: i64 = 48_000_000;
/// A reply's fixed part after its length word: request id, response-to, opcode, flags.
const HEADER: usize = 16;

/// What is wrong with a reply; the texts are skynet's where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Not an OP_MSG.
    Opcode(i32),
    /// A checksum is present.
    Checksum,
    /// Flags other than moreToCome.
    Flags(i32),
    /// The section is not a single body (kind 0).
    PayloadType(u8),
    /// The body document's length does not fill the message.
    Sections,
    /// The length word is out of bounds.
    Length(i64),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Opcode(op) => write!(f, "Unsupported opcode:{op}"),
            ReplyError::Checksum => f.write_str("Unsupported OP_MSG flag checksumPresent"),
            ReplyError::Flags(flags) => write!(f, "Unsupported OP_MSG flag:{flags}"),
            ReplyError::PayloadType(t) => write!(f, "Unsupported OP_MSG payload type: {t}"),
            ReplyError::Sections => f.write_str("Unsupported OP_MSG reply: >1 section"),
            ReplyError::Length(n) => write!(f, "Invalid mongo reply length {n}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// The head of an OP_MSG request whose single body section, `doc_len` bytes, follows.
pub fn op_msg_head(request_id: i32, flags: i32, doc_len: usize) -> [u8; 21] {
    let total = (21 + doc_len) as i32;
    let mut head = [0u8; 21];
    for (i, word) in [total, request_id, 0, OP_MSG, flags]
        .into_iter()
        .enumerate()
    {
        head[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    // head[20] = 0: a body section
    head
}

/// How many bytes of a reply follow its four-byte length word `prefix`.
pub fn reply_length(prefix: &[u8]) -> Result<usize, ReplyError> {
    let word: [u8; 4] = prefix
        .get(..4)
        .and_then(|p| p.try_into().ok())
        .ok_or(ReplyError::Length(-1))?;
    let len = i64::from(i32::from_le_bytes(word));
    if !(4..=MAX_MESSAGE).contains(&len) {
        return Err(ReplyError::Length(len));
    }
    Ok(len as usize - 4)
}

/// A reply: which request it answers and where its body document lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request id this answers.
    pub response_to: i32,
    /// The body document's bytes within the reply.
    pub document: Range<usize>,
}

/// Reads a reply (what follows its length word); `None` when it is too short to have a
/// header (skynet's driver then answers `false`).
pub fn parse_reply(data: &[u8]) -> Result<Option<Reply>, ReplyError> {
    if data.len() < HEADER {
        return Ok(None);
    }
    let word = |i: usize| i32::from_le_bytes(data[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let opcode = word(2);
    if opcode != OP_MSG {
        return Err(ReplyError::Opcode(opcode));
    }
    let flags = word(3);
    if flags & CHECKSUM_PRESENT != 0 {
        return Err(ReplyError::Checksum);
    }
    if flags != 0 && flags != MORE_TO_COME {
        return Err(ReplyError::Flags(flags));
    }
    let kind = *data.get(HEADER).ok_or(ReplyError::Sections)?;
    if kind != 0 {
        return Err(ReplyError::PayloadType(kind));
    }
    let start = HEADER + 1;
    let doc_len = crate::bson::declared_length(&data[start..]).ok_or(ReplyError::Sections)?;
    if usize::try_from(doc_len).ok() != Some(data.len() - start) {
        return Err(ReplyError::Sections);
    }
    Ok(Some(Reply {
        response_to: word(1),
        document: start..data.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_request_head_is_what_skynet_s_driver_writes() {
        // driver.op_msg(7, 0, bson.encode{}) printed by skynet f19d1605, less the document
        let want = "1a0000000700000000000000dd0700000000000000";
        let head: String = op_msg_head(7, 0, 5)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(head, want);
    }

    fn reply(response_to: i32, opcode: i32, flags: i32, kind: u8, doc: &[u8]) -> Vec<u8> {
        [
            &9i32.to_le_bytes()[..],
            &response_to.to_le_bytes(),
            &opcode.to_le_bytes(),
            &flags.to_le_bytes(),
            &[kind],
            doc,
        ]
        .concat()
    }

    #[test]
    fn replies_are_read_and_bad_ones_refused() {
        let doc = [5, 0, 0, 0, 0];
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, 0, 0, &doc)),
            Ok(Some(Reply {
                response_to: 3,
                document: 17..22
            }))
        );
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, MORE_TO_COME, 0, &doc))
                .unwrap()
                .unwrap()
                .response_to,
            3
        );
        assert_eq!(parse_reply(&[0; 15]), Ok(None));
        assert_eq!(
            parse_reply(&reply(3, 1, 0, 0, &doc)),
            Err(ReplyError::Opcode(1))
        );
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, 1, 0, &doc)),
            Err(ReplyError::Checksum)
        );
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, 4, 0, &doc)),
            Err(ReplyError::Flags(4))
        );
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, 0, 1, &doc)),
            Err(ReplyError::PayloadType(1))
        );
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, 0, 0, &[6, 0, 0, 0, 0])),
            Err(ReplyError::Sections)
        );
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, 0, 0, &[5, 0])),
            Err(ReplyError::Sections)
        );
        assert_eq!(
            parse_reply(&reply(3, OP_MSG, 0, 0, &[])[..16]),
            Err(ReplyError::Sections)
        );
        assert_eq!(ReplyError::Opcode(1).to_string(), "Unsupported opcode:1");
    }

    #[test]
    fn reply_lengths_are_bounded() {
        assert_eq!(reply_length(&30i32.to_le_bytes()), Ok(26));
        assert_eq!(
            reply_length(&3i32.to_le_bytes()),
            Err(ReplyError::Length(3))
        );
        assert_eq!(
            reply_length(&(-1i32).to_le_bytes()),
            Err(ReplyError::Length(-1))
        );
        assert_eq!(
            reply_length(&48_000_001i32.to_le_bytes()),
            Err(ReplyError::Length(48_000_001))
        );
        assert_eq!(reply_length(b"ab"), Err(ReplyError::Length(-1)));
    }

    proptest! {
        #[test]
        fn any_reply_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some(reply)) = parse_reply(&bytes) {
                prop_assert!(reply.document.end == bytes.len());
            }
            let _ = reply_length(&bytes);
        }
    }
}
