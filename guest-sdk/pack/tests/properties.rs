//! Property tests: round trips, and robustness of the reader on hostile input.

mod common;

use common::{arb_value, assert_same_values, same_values};
use proptest::prelude::*;
use skywasm_pack::{pack, pack_into, unpack, PackError, Unpacker, Value};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(values in prop::collection::vec(arb_value(), 0..4)) {
        let bytes = pack(&values).expect("generated values are packable");
        assert_same_values(&unpack(&bytes).expect("own output unpacks"), &values);

        // The streaming reader sees the same values and ends where the
        // buffer ends.
        let mut reader = Unpacker::new(&bytes);
        let mut streamed = Vec::new();
        while let Some(value) = reader.next_value().expect("own output unpacks") {
            streamed.push(value);
        }
        prop_assert_eq!(reader.offset(), bytes.len());
        prop_assert!(same_values(&streamed, &values));
    }

    #[test]
    fn pack_into_appends(prefix in prop::collection::vec(any::<u8>(), 0..8), value in arb_value()) {
        let mut out = prefix.clone();
        pack_into(&mut out, std::slice::from_ref(&value)).expect("packable");
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &pack(&[value]).expect("packable")[..]);
    }

    #[test]
    fn every_truncation_of_one_value_is_an_error(value in arb_value()) {
        let bytes = pack(&[value]).expect("packable");
        for cut in 1..bytes.len() {
            prop_assert!(unpack(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
        }
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_decoder(&bytes)?;
    }

    /// Bytes made mostly of plausible type bytes reach deeper into the reader
    /// than uniform noise does.
    #[test]
    fn plausible_bytes_decode_or_fail(
        bytes in prop::collection::vec(
            prop_oneof![
                Just(0x00u8), Just(0x06), Just(0x0e), Just(0xfe), Just(0x0a),
                Just(0x12), Just(0x15), Just(0x42), Just(0x04), Just(0x0c),
                any::<u8>(),
            ],
            0..256,
        )
    ) {
        check_decoder(&bytes)?;
    }

    #[test]
    fn corrupted_encodings_decode_or_fail(
        value in arb_value(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = pack(&[value]).expect("packable");
        for (index, byte) in edits {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        check_decoder(&bytes)?;
    }
}

/// Whatever the reader makes of `bytes`, it must not panic; anything it
/// accepts must re-pack (canonically) and read back unchanged.
fn check_decoder(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(values) = unpack(bytes) else {
        return Ok(());
    };
    match pack(&values) {
        Ok(repacked) => {
            let again = unpack(&repacked).expect("canonical form unpacks");
            prop_assert!(same_values(&again, &values));
            // Canonical bytes are a fixed point.
            prop_assert_eq!(pack(&again).expect("packable"), repacked);
        }
        // The reader accepts NaN keys (skynet's format can carry them) but
        // the writer refuses them because Lua cannot store them.
        Err(error) => prop_assert_eq!(error, PackError::NanKey),
    }
    Ok(())
}

#[test]
fn empty_input_has_no_values() {
    assert_eq!(unpack(&[]), Ok(Vec::<Value>::new()));
    assert_eq!(Unpacker::new(&[]).next_value(), Ok(None));
}
