//! Arbitrary bytes into the skynet.pack readers (what a peer or a guest can send): never a
//! panic, never an allocation larger than the input justifies (run with
//! `-malloc_limit_mb`), and whatever reads successfully writes back to bytes that read the
//! same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skywasm_pack::raw::{Item, Reader};

fuzz_target!(|data: &[u8]| {
    // The streaming reader: balanced tables, then the end or an error.
    let mut reader = Reader::new(data);
    let mut open = 0usize;
    loop {
        match reader.next_item() {
            Ok(Some(Item::Table { .. })) => open += 1,
            Ok(Some(Item::TableEnd)) => {
                assert!(open > 0, "an end without a table");
                open -= 1;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                assert_eq!(open, 0, "the input ended inside a table without an error");
                break;
            }
            Err(_) => break,
        }
    }

    // The value reader, and a round trip of what it read.
    if let Ok(values) = skywasm_pack::unpack(data) {
        // NaN keys cannot be written back (Lua could not hold them): skip those inputs.
        if let Ok(bytes) = skywasm_pack::pack(&values) {
            let again = skywasm_pack::unpack(&bytes).expect("written bytes read back");
            assert_eq!(skywasm_pack::pack(&again).expect("and write again"), bytes);
        }
    }
});
