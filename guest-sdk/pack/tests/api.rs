//! The convenience API of `Value` and `Table`, and writer errors.

use skywasm_pack::{pack, pack_into, values, PackError, Table, Value};

#[test]
fn conversions() {
    assert_eq!(Value::from("GET"), Value::String(b"GET".to_vec()));
    assert_eq!(Value::from(String::from("a")), Value::String(b"a".to_vec()));
    assert_eq!(Value::from(&b"\xff\x00"[..]), Value::String(vec![0xff, 0]));
    assert_eq!(Value::from(b"ab"), Value::String(b"ab".to_vec()));
    assert_eq!(Value::from(vec![1u8]), Value::String(vec![1]));
    assert_eq!(Value::from(-3i32), Value::Integer(-3));
    assert_eq!(Value::from(u32::MAX), Value::Integer(4_294_967_295));
    assert_eq!(Value::from(7u8), Value::Integer(7));
    assert_eq!(Value::from(true), Value::Boolean(true));
    assert_eq!(Value::from(1.5f32), Value::Real(1.5));
    assert_eq!(Value::from(None::<i64>), Value::Nil);
    assert_eq!(Value::from(Some("x")), Value::from("x"));
    assert_eq!(Value::from(Table::new()), Value::Table(Table::default()));
    assert_eq!(Value::default(), Value::Nil);
    let table: Table = [1, 2].into_iter().collect();
    assert_eq!(table, Table::from_array(vec![1.into(), 2.into()]));
}

#[test]
fn accessors() {
    assert_eq!(Value::from("héllo").as_str(), Some("héllo"));
    let binary = Value::from(&[0xffu8, 0xfe][..]);
    assert_eq!(binary.as_str(), None);
    assert_eq!(binary.as_bytes(), Some(&[0xff, 0xfe][..]));
    assert_eq!(Value::from(5).as_integer(), Some(5));
    assert_eq!(Value::from(3.0).as_integer(), Some(3));
    assert_eq!(Value::from(-0.0).as_integer(), Some(0));
    assert_eq!(Value::from(3.5).as_integer(), None);
    assert_eq!(
        Value::from(-9_223_372_036_854_775_808.0).as_integer(),
        Some(i64::MIN)
    );
    assert_eq!(Value::from(9_223_372_036_854_775_808.0).as_integer(), None);
    assert_eq!(Value::from(f64::NAN).as_integer(), None);
    assert_eq!(Value::from(f64::INFINITY).as_integer(), None);
    assert_eq!(Value::from("1").as_integer(), None);
    assert_eq!(Value::from(2).as_real(), Some(2.0));
    assert_eq!(Value::from(false).as_bool(), Some(false));
    assert_eq!(Value::Nil.as_bool(), None);
    assert!(Value::Nil.is_nil() && !Value::from(false).is_nil());
    assert!(!Value::Nil.is_truthy() && !Value::from(false).is_truthy());
    assert!(Value::from(0).is_truthy());
    assert_eq!(Value::LightUserdata(42).as_light_userdata(), Some(42));
    let mut value = Value::from(Table::new());
    value.as_table_mut().expect("table").push(1);
    assert_eq!(value.as_table().map(|t| t.array.len()), Some(1));
    let names: Vec<_> = values![
        Value::Nil,
        true,
        1,
        1.5,
        "s",
        Table::new(),
        Value::LightUserdata(0)
    ]
    .iter()
    .map(Value::type_name)
    .collect();
    assert_eq!(
        names,
        ["nil", "boolean", "number", "number", "string", "table", "userdata"]
    );
}

#[test]
fn table_lookup_follows_lua_key_rules() {
    let mut t = Table::new();
    t.push("one");
    t.insert("x", 1);
    t.insert(2.5, "real");
    t.insert(10, "ten");
    assert_eq!(t.get_int(1), Some(&"one".into()));
    assert_eq!(t.get(&Value::Real(1.0)), Some(&"one".into()));
    assert_eq!(t.get_int(0), None);
    assert_eq!(t.get_int(2), None);
    assert_eq!(t.get(&Value::Real(10.0)), Some(&"ten".into()));
    assert_eq!(t.get(&Value::Real(2.5)), Some(&"real".into()));
    assert_eq!(t.get_str("x"), Some(&1.into()));
    assert_eq!(t.get(&"x".into()), Some(&1.into()));
    assert_eq!(t.get_str("y"), None);
    assert_eq!(t.get(&Value::Nil), None);
    assert_eq!(t.get(&Value::Real(f64::NAN)), None);
    // A key stored as an integral float is found by the integer.
    let stored_as_float = Table {
        array: vec![],
        hash: vec![(Value::Real(7.0), true.into())],
    };
    assert_eq!(stored_as_float.get_int(7), Some(&true.into()));
    // i64::MAX is not the float 2^63.
    let big = Table {
        array: vec![],
        hash: vec![(Value::Real(9_223_372_036_854_775_808.0), true.into())],
    };
    assert_eq!(big.get_int(i64::MAX), None);
}

#[test]
fn table_insert_replaces_existing_keys() {
    let mut t = Table::new();
    assert!(t.is_empty());
    t.push(1);
    assert_eq!(t.insert(1, "a"), Some(1.into()));
    assert_eq!(t.insert(1.0, "b"), Some("a".into()));
    assert_eq!(t.array, vec!["b".into()]);
    assert_eq!(t.insert("k", 1), None);
    assert_eq!(t.insert("k", 2), Some(1.into()));
    // Keys never migrate into the array part.
    assert_eq!(t.insert(2, "two"), None);
    assert_eq!(t.array.len(), 1);
    assert_eq!(
        t.hash,
        vec![("k".into(), 2.into()), (2.into(), "two".into())]
    );
}

#[test]
fn writer_rejects_keys_lua_cannot_hold() {
    let nil_key = Table {
        array: vec![],
        hash: vec![(Value::Nil, 1.into())],
    };
    assert_eq!(pack(&[nil_key.into()]), Err(PackError::NilKey));
    let nan_key = Table {
        array: vec![],
        hash: vec![(f64::NAN.into(), 1.into())],
    };
    assert_eq!(pack(&[nan_key.into()]), Err(PackError::NanKey));
    // A NaN value is fine.
    let nan_value = Table {
        array: vec![],
        hash: vec![(1.into(), f64::NAN.into())],
    };
    assert!(pack(&[nan_value.into()]).is_ok());
}

#[test]
fn pack_into_leaves_the_buffer_untouched_on_error() {
    let mut out = vec![0xaa];
    let bad = Table {
        array: vec![],
        hash: vec![(Value::Nil, 1.into())],
    };
    let result = pack_into(&mut out, &values![1, "partial", bad]);
    assert_eq!(result, Err(PackError::NilKey));
    assert_eq!(out, [0xaa]);
    pack_into(&mut out, &values![1]).expect("packable");
    assert_eq!(out, [0xaa, 0x0a, 0x01]);
}

#[test]
fn values_macro_and_empty_message() {
    assert!(values![].is_empty());
    assert_eq!(pack(&values![]), Ok(vec![]));
    assert_eq!(
        pack(&values!["GET", "a",]),
        Ok(vec![0x1c, b'G', b'E', b'T', 0x0c, b'a'])
    );
}

#[test]
fn light_userdata_is_eight_bytes() {
    let bytes = pack(&[Value::LightUserdata(0x0102_0304_0506_0708)]).expect("packable");
    assert_eq!(bytes, [0x03, 8, 7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn pack_error_messages() {
    assert_eq!(
        PackError::TooDeep.to_string(),
        "serialize can't pack too depth table (more than 32 nested tables)"
    );
    assert_eq!(
        PackError::StringTooLong { len: 1 << 32 }.to_string(),
        "serialize can't pack a string of 4294967296 bytes (limit 4 GiB - 1)"
    );
}
