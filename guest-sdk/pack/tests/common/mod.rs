//! Helpers shared by the integration tests.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use proptest::prelude::*;
use skywasm_pack::{Table, Value};

/// Structural equality where floats compare by bits (so NaN equals itself
/// and -0.0 differs from 0.0).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        (Value::Table(x), Value::Table(y)) => {
            same_values(&x.array, &y.array)
                && x.hash.len() == y.hash.len()
                && x.hash
                    .iter()
                    .zip(&y.hash)
                    .all(|((k1, v1), (k2, v2))| same_value(k1, k2) && same_value(v1, v2))
        }
        _ => a == b,
    }
}

/// [`same_value`] over slices.
pub fn same_values(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
}

/// Asserts [`same_values`], printing both sides (shortened) on failure.
pub fn assert_same_values(actual: &[Value], expected: &[Value]) {
    if !same_values(actual, expected) {
        let show = |v: &[Value]| {
            let mut s = format!("{v:?}");
            s.truncate(2000);
            s
        };
        panic!(
            "values differ\n  actual: {}\nexpected: {}",
            show(actual),
            show(expected)
        );
    }
}

/// `depth` nested tables, `{{...{innermost}...}}`, where `innermost` is the
/// deepest of them.
pub fn nested_tables(depth: usize, innermost: Table) -> Value {
    assert!(depth >= 1);
    let mut value = Value::Table(innermost);
    for _ in 1..depth {
        value = Value::Table(Table::from_array(vec![value]));
    }
    value
}

/// Any non-table value, with strings sized across the short/long boundary.
pub fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Integer),
        // Small integers exercise the zero/byte/word/dword boundaries.
        (-70_000i64..70_000).prop_map(Value::Integer),
        any::<u64>().prop_map(|bits| Value::Real(f64::from_bits(bits))),
        any::<f64>().prop_map(Value::Real),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::String),
        any::<u64>().prop_map(Value::LightUserdata),
    ]
}

/// Any value a Lua table may use as a key: not nil, not NaN.
pub fn arb_key() -> impl Strategy<Value = Value> {
    arb_leaf().prop_filter("nil and NaN are not table keys", |key| match key {
        Value::Nil => false,
        Value::Real(f) => !f.is_nan(),
        _ => true,
    })
}

/// A table key: usually a leaf, sometimes any value from `inner` (tables are
/// valid keys; invalid keys are replaced by `true`).
fn arb_key_or_table(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => arb_key(),
        1 => inner.prop_map(|value| match value {
            Value::Nil => Value::Boolean(true),
            Value::Real(f) if f.is_nan() => Value::Boolean(true),
            other => other,
        }),
    ]
}

/// Any packable value: nested tables (arrays crossing the 31-element
/// extended-size boundary) and leaves.
pub fn arb_value() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(6, 256, 40, |inner| {
        (
            prop::collection::vec(inner.clone(), 0..40),
            prop::collection::vec((arb_key_or_table(inner.clone()), inner), 0..5),
        )
            .prop_map(|(array, hash)| Value::Table(Table { array, hash }))
    })
}
