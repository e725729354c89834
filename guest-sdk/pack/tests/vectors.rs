//! Byte-exact checks against vectors produced by skynet's own `lua-seri.c`.
//!
//! `vectors.tsv` is copied from the shared skynet vector file (the `pack`,
//! `pack-depth` and `pack-error` lines): tab separated kind, description and
//! expected output. Long hex strings are shortened as
//! `PREFIX...(N bytes)...SUFFIX`; the values behind each description are
//! rebuilt here.
//!
//! `pack-error` lines (functions, coroutines) have no Rust counterpart: those
//! Lua types cannot be represented by `Value`, so they need no test.

mod common;

use common::{assert_same_values, nested_tables};
use skywasm_pack::{pack, unpack, PackError, Table, Value, MAX_DEPTH};

const VECTORS: &str = include_str!("vectors.tsv");

/// The values a `pack` vector's description stands for.
fn values_for(description: &str) -> Vec<Value> {
    let table = |array: Vec<Value>, hash: Vec<(Value, Value)>| Value::Table(Table { array, hash });
    let one = |v: Value| vec![v];
    match description {
        "nil" => one(Value::Nil),
        "false" => one(false.into()),
        "true" => one(true.into()),
        "int maxinteger" => one(i64::MAX.into()),
        "int mininteger" => one(i64::MIN.into()),
        "float 1.0" => one(1.0.into()),
        "float 0.5" => one(0.5.into()),
        "float -0.0" => one((-0.0).into()),
        "float inf" => one(f64::INFINITY.into()),
        "str ''" => one("".into()),
        "str 'a'" => one("a".into()),
        "str len31" => one("s".repeat(31).into()),
        "str len32" => one("m".repeat(32).into()),
        "str len65535" => one("w".repeat(65535).into()),
        "str len65536" => one("d".repeat(65536).into()),
        "table {}" => one(table(vec![], vec![])),
        "table {1,2,3}" => one(table(vec![1.into(), 2.into(), 3.into()], vec![])),
        "table array30" => one(table((1..=30).map(Value::from).collect(), vec![])),
        "table array31" => one(table(vec![true.into(); 31], vec![])),
        "table array300" => one(table(vec![0.into(); 300], vec![])),
        "table {x=1}" => one(table(vec![], vec![("x".into(), 1.into())])),
        "table {10,[3]=30}" => one(table(vec![10.into()], vec![(3.into(), 30.into())])),
        "table {[1.5]=true}" => one(table(vec![], vec![(1.5.into(), true.into())])),
        "table nested {{{}}}" => {
            let inner = table(vec![], vec![]);
            one(table(vec![table(vec![inner], vec![])], vec![]))
        }
        "multi (1,'a',nil,true)" => vec![1.into(), "a".into(), Value::Nil, true.into()],
        "multi ('GET','a')" => vec!["GET".into(), "a".into()],
        other => match other.strip_prefix("int ") {
            Some(n) => one(n.parse::<i64>().expect("integer vector").into()),
            None => panic!("no value known for vector {other:?}"),
        },
    }
}

fn hex_decode(hex: &str) -> Vec<u8> {
    assert!(hex.len() % 2 == 0, "odd hex length: {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Checks `actual` against a possibly shortened hex vector. The elided middle
/// of each shortened vector repeats the prefix's last byte.
fn assert_bytes_match(description: &str, actual: &[u8], expected_hex: &str) {
    let Some((prefix, rest)) = expected_hex.split_once("...(") else {
        assert_eq!(actual, hex_decode(expected_hex), "vector {description}");
        return;
    };
    let (total, suffix) = rest.split_once(" bytes)...").expect("shortened vector");
    let total: usize = total.parse().expect("byte count");
    let (prefix, suffix) = (hex_decode(prefix), hex_decode(suffix));
    assert_eq!(actual.len(), total, "vector {description}: length");
    assert!(actual.starts_with(&prefix), "vector {description}: prefix");
    assert!(actual.ends_with(&suffix), "vector {description}: suffix");
    let filler = *prefix.last().expect("non-empty prefix");
    let middle = &actual[prefix.len()..total - suffix.len()];
    assert!(
        middle.iter().all(|&b| b == filler),
        "vector {description}: middle"
    );
}

fn lines(kind: &str) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
    VECTORS.lines().filter_map(move |line| {
        let mut fields = line.split('\t');
        (fields.next() == Some(kind)).then(|| {
            let description = fields.next().expect("description");
            let expected = fields.next().expect("expected output");
            (description, expected)
        })
    })
}

#[test]
fn pack_vectors_match_skynet_bytes_and_round_trip() {
    let mut checked = 0;
    for (description, expected_hex) in lines("pack") {
        let values = values_for(description);
        let bytes = pack(&values).unwrap_or_else(|e| panic!("vector {description}: {e}"));
        assert_bytes_match(description, &bytes, expected_hex);
        let back = unpack(&bytes).unwrap_or_else(|e| panic!("vector {description}: {e}"));
        assert_same_values(&back, &values);
        checked += 1;
    }
    assert_eq!(checked, 37, "every pack vector is checked");
}

/// The shortened vectors are rebuilt in full and unpacked from those bytes.
#[test]
fn shortened_vectors_unpack_from_reconstructed_bytes() {
    let mut long_word = vec![0x15, 0xff, 0xff];
    long_word.extend(std::iter::repeat_n(b'w', 65535));
    let mut long_dword = vec![0x25, 0x00, 0x00, 0x01, 0x00];
    long_dword.extend(std::iter::repeat_n(b'd', 65536));
    let mut array300 = vec![0xfe, 0x12, 0x2c, 0x01];
    array300.extend(std::iter::repeat_n(0x02, 300));
    array300.push(0x00);
    for (description, bytes) in [
        ("str len65535", long_word),
        ("str len65536", long_dword),
        ("table array300", array300),
    ] {
        let values = unpack(&bytes).unwrap_or_else(|e| panic!("vector {description}: {e}"));
        assert_same_values(&values, &values_for(description));
    }
}

#[test]
fn pack_depth_vectors() {
    let mut checked = 0;
    for (description, expected) in lines("pack-depth") {
        let depth: usize = description
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("depth in description");
        let value = nested_tables(depth, Table::from_array(vec![1.into()]));
        let result = pack(std::slice::from_ref(&value));
        if expected == "OK" {
            let bytes = result.unwrap_or_else(|e| panic!("vector {description}: {e}"));
            assert_same_values(&unpack(&bytes).expect("unpack"), &[value]);
        } else {
            assert!(expected.starts_with("ERROR serialize can't pack too depth table"));
            assert_eq!(result, Err(PackError::TooDeep), "vector {description}");
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn depth_limit_is_about_values_not_tables() {
    // The innermost of 33 empty tables sits inside 32 tables and holds
    // nothing, so skynet packs it; one more level cannot be packed.
    let empty_33 = nested_tables(MAX_DEPTH + 1, Table::new());
    let bytes = pack(std::slice::from_ref(&empty_33)).expect("33 empty tables pack");
    assert_same_values(&unpack(&bytes).expect("unpack"), &[empty_33]);
    assert_eq!(
        pack(&[nested_tables(MAX_DEPTH + 2, Table::new())]),
        Err(PackError::TooDeep)
    );
    // Even a nil counts as a value.
    let holding_nil = Table::from_array(vec![Value::Nil]);
    assert_eq!(
        pack(&[nested_tables(MAX_DEPTH + 1, holding_nil)]),
        Err(PackError::TooDeep)
    );
}

#[test]
fn pack_error_vectors_have_no_rust_counterpart() {
    let kinds: Vec<_> = lines("pack-error").map(|(d, _)| d).collect();
    assert_eq!(kinds, ["function", "coroutine"]);
}
