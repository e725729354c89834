//! Arbitrary bytes into the decoders of bytes from outside a Lua service — a BSON document
//! (from a MongoDB server or another service), an OP_MSG reply, sproto's zero-packing:
//! never a panic, never an allocation larger than the input justifies (run with
//! `-malloc_limit_mb`), a document that decodes also indexes, a reply that parses points
//! inside itself, and what unpacks packs back to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skywasm_codecs::bson::{self, Key, Sink, Value};
use skywasm_codecs::{mongo, sproto};

/// Counts what a decode hands over, checking that documents open and close in pairs.
#[derive(Default)]
struct Balance {
    open: usize,
    values: usize,
}

impl Sink for Balance {
    fn open(&mut self, _key: Option<Key<'_>>, _array: bool) -> Result<(), bson::Error> {
        self.open += 1;
        Ok(())
    }

    fn close(&mut self, outermost: bool) -> Result<(), bson::Error> {
        assert!(self.open > 0, "a close without an open");
        self.open -= 1;
        assert_eq!(outermost, self.open == 0);
        Ok(())
    }

    fn value(&mut self, _key: Key<'_>, value: Value<'_>) -> Result<(), bson::Error> {
        if let Value::Special(parts) = value {
            assert!(parts.iter().map(|p| p.len()).sum::<usize>() >= 1);
        }
        self.values += 1;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Balance::default();
    if let Ok(len) = bson::decode(data, &mut sink) {
        assert!(len <= data.len());
        assert_eq!(sink.open, 0, "a decoded document left something open");
        bson::index(&data[..len], |_, slot| {
            assert!(slot.offset + slot.width().unwrap() <= len);
            Ok(())
        })
        .expect("a document that decodes also indexes");
    }
    if let Ok(Some(reply)) = mongo::parse_reply(data) {
        assert!(reply.document.end <= data.len());
    }
    let _ = mongo::reply_length(data);
    if let Ok(len) = sproto::pack::unpacked_len(data) {
        // (every input byte makes at most eight: the length is bounded by the input)
        assert!(len <= data.len() * 8);
        let mut out = vec![0u8; len];
        sproto::pack::unpack_into(data, &mut out);
        // what unpacks packs back to bytes that unpack the same
        let mut packed = Vec::new();
        sproto::pack::pack(&out, &mut packed);
        assert_eq!(sproto::pack::unpacked_len(&packed).ok(), Some(len));
        let mut again = vec![0u8; len];
        sproto::pack::unpack_into(&packed, &mut again);
        assert_eq!(again, out);
    }
});
