//! The reader on malformed, hostile and non-canonical input.

mod common;

use common::{assert_same_values, nested_tables};
use skywasm_pack::{pack, unpack, Table, UnpackError, UnpackErrorKind, Unpacker, Value, MAX_DEPTH};

/// Unpacks `bytes`, expecting an error of `kind` at `offset`.
fn expect_error(bytes: &[u8], offset: usize, kind: UnpackErrorKind) {
    let error = unpack(bytes).expect_err("malformed input must be rejected");
    assert_eq!(
        (error.offset(), error.kind()),
        (offset, kind),
        "input {bytes:02x?}"
    );
}

#[test]
fn truncated_input() {
    use UnpackErrorKind::Truncated;
    expect_error(&[0x0a], 1, Truncated); // byte number without its byte
    expect_error(&[0x22, 1, 2, 3], 1, Truncated); // dword cut short
    expect_error(&[0x42, 0, 0], 1, Truncated); // real cut short
    expect_error(&[0x03, 1], 1, Truncated); // light userdata cut short
    expect_error(&[0x1c, b'G', b'E'], 1, Truncated); // short string body
    expect_error(&[0x15, 0x05], 1, Truncated); // long string length
    expect_error(&[0x15, 0x05, 0x00, b'a'], 3, Truncated); // long string body
    expect_error(&[0x25, 0xff, 0xff, 0xff, 0xff], 5, Truncated); // 4 GiB claimed
    expect_error(&[0x0e, 0x0a, 0x01], 3, Truncated); // missing end marker
    expect_error(&[0x06, 0x0c, b'x'], 3, Truncated); // key without value
    expect_error(&[0xfe], 1, Truncated); // extended size missing
}

#[test]
fn invalid_type_and_cookies() {
    for byte in [0x07u8, 0x0f, 0xff] {
        expect_error(&[byte], 0, UnpackErrorKind::InvalidType { byte });
    }
    // Cookies no writer produces: nil 1, boolean 2, number 3/5/7/9+,
    // light userdata 1, long string other than 2 and 4.
    for byte in [
        0x08u8, 0x11, 0x1a, 0x2a, 0x3a, 0x4a, 0xfa, 0x0b, 0x05, 0x0d, 0x1d, 0xfd,
    ] {
        expect_error(
            &[byte, 0, 0, 0, 0, 0, 0, 0, 0],
            0,
            UnpackErrorKind::InvalidCookie { byte },
        );
    }
    // The error points at the offending value, not the start of the input.
    expect_error(
        &[0x09, 0x0e, 0x1a, 0x00],
        2,
        UnpackErrorKind::InvalidCookie { byte: 0x1a },
    );
}

#[test]
fn extended_array_size_must_be_a_non_negative_integer() {
    use UnpackErrorKind::{ArraySizeTooLarge, InvalidArraySize, InvalidCookie};
    // A real, even an integral one, is rejected like skynet does.
    let mut real_size = vec![0xfe, 0x42];
    real_size.extend(1.0f64.to_le_bytes());
    expect_error(&real_size, 1, InvalidArraySize);
    expect_error(
        &[0xfe, 0x22, 0xff, 0xff, 0xff, 0xff, 0x00],
        1,
        InvalidArraySize,
    ); // -1
    expect_error(&[0xfe, 0x04, 0x00], 1, InvalidArraySize); // a string
    expect_error(&[0xfe, 0x00, 0x00], 1, InvalidArraySize); // nil
    expect_error(&[0xfe, 0x1a, 0x00], 1, InvalidCookie { byte: 0x1a });
    let mut huge = vec![0xfe, 0x32];
    huge.extend(i64::MAX.to_le_bytes());
    expect_error(
        &huge,
        0,
        ArraySizeTooLarge {
            size: i64::MAX as u64,
        },
    );
}

#[test]
fn array_sizes_are_capped_by_the_remaining_input() {
    use UnpackErrorKind::ArraySizeTooLarge;
    // 30 elements need at least 31 more bytes (with the end marker).
    expect_error(&[0xf6; 31], 0, ArraySizeTooLarge { size: 30 });
    // Nested claims add up: the outer table already reserved 1001 bytes, so
    // the inner table's claim cannot reuse them.
    let mut nested = vec![0xfe, 0x12, 0xe8, 0x03, 0xfe, 0x12, 0xe8, 0x03];
    nested.resize(1100, 0x02);
    expect_error(&nested, 4, ArraySizeTooLarge { size: 1000 });
    // An exact fit is fine.
    let mut exact = vec![0xfe, 0x12, 0xe8, 0x03];
    exact.extend(std::iter::repeat_n(0x02, 1000));
    exact.push(0x00);
    let values = unpack(&exact).expect("exact fit");
    assert_eq!(values[0].as_table().map(|t| t.array.len()), Some(1000));
}

/// `count` tables of array size 1 around `inner`, then their end markers.
fn nested_encoding(count: usize, inner: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x0e; count];
    bytes.extend_from_slice(inner);
    bytes.extend(std::iter::repeat_n(0x00, count));
    bytes
}

#[test]
fn reader_applies_the_writer_depth_limit() {
    // A value inside 32 tables is fine, inside 33 it is too deep.
    let ok = nested_encoding(MAX_DEPTH, &[0x0a, 0x01]);
    let expected = nested_tables(MAX_DEPTH, Table::from_array(vec![1.into()]));
    assert_same_values(
        &unpack(&ok).expect("32 levels"),
        std::slice::from_ref(&expected),
    );
    assert_eq!(pack(&[expected]).expect("packable"), ok);
    expect_error(
        &nested_encoding(MAX_DEPTH + 1, &[0x0a, 0x01]),
        MAX_DEPTH + 1,
        UnpackErrorKind::TooDeep,
    );
    // An empty table inside 32 tables holds no value: allowed, as in skynet.
    let empty_innermost = nested_encoding(MAX_DEPTH, &[0x06, 0x00]);
    assert!(unpack(&empty_innermost).is_ok());
    expect_error(
        &nested_encoding(MAX_DEPTH + 1, &[0x06, 0x00]),
        MAX_DEPTH + 1,
        UnpackErrorKind::TooDeep,
    );
    // Depth through the hash part counts too: {[{[...{}...] = true}] = true}.
    let via_keys = |count: usize| {
        let mut bytes = vec![0x06; count + 1];
        bytes.push(0x00);
        for _ in 0..count {
            bytes.extend([0x09, 0x00]);
        }
        bytes
    };
    let ok = unpack(&via_keys(MAX_DEPTH)).expect("empty table inside 32 tables");
    assert_eq!(pack(&ok).expect("packable"), via_keys(MAX_DEPTH));
    expect_error(
        &via_keys(MAX_DEPTH + 1),
        MAX_DEPTH + 1,
        UnpackErrorKind::TooDeep,
    );
    // Very deep input fails fast instead of overflowing the stack.
    expect_error(
        &vec![0x0e; 1_000_000],
        MAX_DEPTH + 1,
        UnpackErrorKind::TooDeep,
    );
}

#[test]
fn non_canonical_forms_are_accepted() {
    let cases: [(&[u8], Value); 7] = [
        (&[0x0a, 0x00], 0.into()),
        (&[0x12, 0x01, 0x00], 1.into()),
        (&[0x22, 0x01, 0x00, 0x00, 0x00], 1.into()),
        (
            &[0x32, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            (-1).into(),
        ),
        (&[0x15, 0x01, 0x00, b'a'], "a".into()),
        (&[0x25, 0x00, 0x00, 0x00, 0x00], "".into()),
        (
            &[0xfe, 0x0a, 0x02, 0x09, 0x01, 0x00],
            Table::from_array(vec![true.into(), false.into()]).into(),
        ),
    ];
    for (bytes, expected) in cases {
        assert_same_values(&unpack(bytes).expect("valid"), &[expected]);
    }
    // Extended size below 31, as zero.
    assert_same_values(
        &unpack(&[0xfe, 0x02, 0x00]).expect("valid"),
        &[Table::new().into()],
    );
}

#[test]
fn hash_part_keeps_stream_order_and_nil_values() {
    // {x = nil, [true] = 1, [2.5] = "v"} as a stream could carry it.
    let mut bytes = vec![0x06, 0x0c, b'x', 0x00, 0x09, 0x0a, 0x01, 0x42];
    bytes.extend(2.5f64.to_le_bytes());
    bytes.extend([0x0c, b'v', 0x00]);
    let table = Table {
        array: vec![],
        hash: vec![
            ("x".into(), Value::Nil),
            (true.into(), 1.into()),
            (2.5.into(), "v".into()),
        ],
    };
    assert_same_values(&unpack(&bytes).expect("valid"), &[table.clone().into()]);
    assert_eq!(pack(&[table.into()]).expect("packable"), bytes);
}

#[test]
fn unpacker_streams_and_stops_after_an_error() {
    let bytes = [0x0a, 0x01, 0x0c, b'a', 0x07, 0x0a, 0x02];
    let mut reader = Unpacker::new(&bytes);
    assert_eq!(reader.next_value(), Ok(Some(1.into())));
    assert_eq!(reader.offset(), 2);
    assert_eq!(reader.next(), Some(Ok("a".into())));
    let error = reader.next_value().expect_err("type 7");
    assert_eq!(error.kind(), UnpackErrorKind::InvalidType { byte: 0x07 });
    assert!(reader.is_finished());
    assert_eq!(reader.next_value(), Ok(None));
    assert_eq!(reader.next(), None);
    assert_eq!(Unpacker::new(&bytes[..4]).count(), 2);
}

#[test]
fn error_messages() {
    let error: UnpackError = unpack(&[0x09, 0x0a]).expect_err("truncated");
    assert_eq!(
        error.to_string(),
        "Invalid serialize stream at byte 2: unexpected end of input"
    );
    let error = unpack(&[0x1a]).expect_err("bad cookie");
    assert_eq!(
        error.to_string(),
        "Invalid serialize stream at byte 0: invalid cookie 3 in type byte 0x1a"
    );
}
