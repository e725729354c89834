//! BSON against bytes printed by skynet's own `bson` module (f19d1605, luaclib/bson.so run
//! by its Lua), and property tests: any bytes decode without panicking, and what the
//! writers make decodes back to itself.

use super::*;
use proptest::prelude::*;

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A decoded document as a tree, for comparing.
#[derive(Debug, Clone, PartialEq)]
enum Tree {
    Double(f64),
    Str(Vec<u8>),
    Bool(bool),
    Int(i64),
    Special(Vec<u8>),
    Doc(Vec<(Vec<u8>, Tree)>),
    Array(Vec<Tree>),
}

/// Builds [`Tree`]s; arrays keep their elements in order.
#[derive(Default)]
struct TreeSink {
    stack: Vec<(Option<Vec<u8>>, Tree)>,
    done: Option<Tree>,
}

fn key_bytes(key: Key<'_>) -> Vec<u8> {
    match key {
        Key::Name(n) => n.to_vec(),
        Key::Index(i) => i.to_string().into_bytes(),
    }
}

impl TreeSink {
    fn put(&mut self, key: Vec<u8>, value: Tree) {
        match &mut self.stack.last_mut().expect("inside a document").1 {
            Tree::Doc(fields) => fields.push((key, value)),
            Tree::Array(items) => items.push(value),
            _ => unreachable!(),
        }
    }
}

impl Sink for TreeSink {
    fn open(&mut self, key: Option<Key<'_>>, array: bool) -> Result<(), Error> {
        let node = if array {
            Tree::Array(Vec::new())
        } else {
            Tree::Doc(Vec::new())
        };
        self.stack.push((key.map(key_bytes), node));
        Ok(())
    }

    fn close(&mut self, outermost: bool) -> Result<(), Error> {
        let (key, node) = self.stack.pop().unwrap();
        assert_eq!(outermost, self.stack.is_empty());
        match key {
            Some(key) => self.put(key, node),
            None => self.done = Some(node),
        }
        Ok(())
    }

    fn value(&mut self, key: Key<'_>, value: Value<'_>) -> Result<(), Error> {
        let value = match value {
            Value::Double(d) => Tree::Double(d),
            Value::String(s) => Tree::Str(s.to_vec()),
            Value::Bool(b) => Tree::Bool(b),
            Value::Integer(i) => Tree::Int(i),
            Value::Special(parts) => Tree::Special(parts.concat()),
        };
        self.put(key_bytes(key), value);
        Ok(())
    }
}

fn decode_tree(bytes: &[u8]) -> Result<Tree, Error> {
    let mut sink = TreeSink::default();
    decode(bytes, &mut sink)?;
    Ok(sink.done.unwrap())
}

/// Writes `tree`'s element under `key` (a name, or an array position when `None`).
fn put_tree(out: &mut Vec<u8>, key: Option<&[u8]>, index: usize, tree: &Tree) -> Result<(), Error> {
    let head = |out: &mut Vec<u8>, kind| match key {
        Some(key) => put_key(out, kind, key),
        None => {
            put_index_key(out, kind, index);
            Ok(())
        }
    };
    match tree {
        Tree::Double(d) => {
            head(out, REAL)?;
            put_double(out, *d);
        }
        Tree::Str(s) if is_special(s) => put_special(out, key, index, s)?,
        Tree::Str(s) => {
            head(out, STRING)?;
            put_string(out, s)?;
        }
        Tree::Bool(b) => {
            head(out, BOOLEAN)?;
            out.push(u8::from(*b));
        }
        Tree::Int(i) => {
            head(out, integer_type(*i))?;
            put_integer(out, *i);
        }
        Tree::Special(s) => put_special(out, key, index, s)?,
        Tree::Doc(_) | Tree::Array(_) => {
            head(
                out,
                if matches!(tree, Tree::Array(_)) {
                    ARRAY
                } else {
                    DOCUMENT
                },
            )?;
            put_document(out, tree)?;
        }
    }
    Ok(())
}

fn put_document(out: &mut Vec<u8>, tree: &Tree) -> Result<(), Error> {
    let start = begin_document(out);
    match tree {
        Tree::Doc(fields) => {
            for (k, v) in fields {
                put_tree(out, Some(k), 0, v)?;
            }
        }
        Tree::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                put_tree(out, None, i, v)?;
            }
        }
        _ => unreachable!(),
    }
    end_document(out, start)
}

fn encode_tree(tree: &Tree) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    put_document(&mut out, tree)?;
    Ok(out)
}

fn doc(fields: &[(&str, Tree)]) -> Tree {
    Tree::Doc(
        fields
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect(),
    )
}

fn special(bytes: &[u8]) -> Tree {
    Tree::Special(bytes.to_vec())
}

fn str(s: &str) -> Tree {
    Tree::Str(s.as_bytes().to_vec())
}

/// `bson.encode_order("a", 1, "b", 2^31|0, "c", 1.5, "d", "str", "e", true, "f", false,
/// "g", -5, "h", math.mininteger, "i", 2.0)`.
const SCALARS: &str = "52000000106100010000001262000000008000000000016300000000000000f83f02640004000000737472000865000108660000106700fbffffff1268000000000000000080016900000000000000004000";
/// `bson.encode_order("bin", bson.binary("ab\0c"), "oid", bson.objectid("0123456789abcdef01234567"),
/// "date", bson.date(1700000000), "ts", bson.timestamp(1700000000, 7), "re", bson.regex("^a.*", "i"),
/// "i64", bson.int64(5), "re2", bson.regex("x"))`.
const SPECIALS: &str = "5e0000000562696e00040000000061620063076f6964000123456789abcdef012345670964617465000068e5cf8b010000117473000700000000f153650b7265005e612e2a006900126936340005000000000000000b7265320078000000";

fn specials_tree() -> Tree {
    doc(&[
        ("bin", special(b"\0\x05\0ab\0c")),
        ("oid", special(&unhex("00070123456789abcdef01234567"))),
        ("date", special(&unhex("000900f15365"))),
        ("ts", special(&unhex("00110700000000f15365"))),
        ("re", special(b"\0\x0b^a.*\0i\0")),
        ("i64", special(&unhex("00120500000000000000"))),
        ("re2", special(b"\0\x0bx\0\0")),
    ])
}

#[test]
fn scalars_are_skynet_s_bytes() {
    let tree = doc(&[
        ("a", Tree::Int(1)),
        ("b", Tree::Int(1 << 31)),
        ("c", Tree::Double(1.5)),
        ("d", str("str")),
        ("e", Tree::Bool(true)),
        ("f", Tree::Bool(false)),
        ("g", Tree::Int(-5)),
        ("h", Tree::Int(i64::MIN)),
        ("i", Tree::Double(2.0)),
    ]);
    assert_eq!(encode_tree(&tree).unwrap(), unhex(SCALARS));
    assert_eq!(decode_tree(&unhex(SCALARS)).unwrap(), tree);
}

#[test]
fn special_values_are_skynet_s_bytes_both_ways() {
    assert_eq!(encode_tree(&specials_tree()).unwrap(), unhex(SPECIALS));
    // decoding gives skynet's Lua forms back; the int64 comes back as a plain integer
    let mut back = specials_tree();
    if let Tree::Doc(fields) = &mut back {
        fields[5].1 = Tree::Int(5);
    }
    assert_eq!(decode_tree(&unhex(SPECIALS)).unwrap(), back);
}

#[test]
fn constants_arrays_nesting_and_utf8_are_skynet_s_bytes() {
    let cases = [
        (
            doc(&[("n", special(&[0, NULL])), ("mi", special(&[0, MINKEY])), ("ma", special(&[0, MAXKEY]))]),
            "100000000a6e00ff6d69007f6d610000",
        ),
        (
            doc(&[("arr", Tree::Array(vec![Tree::Int(1), str("two"), Tree::Double(3.5)]))]),
            "2c000000046172720022000000103000010000000231000400000074776f000132000000000000000c400000",
        ),
        (doc(&[("nested", doc(&[("x", str("y"))]))]), "1b000000036e6573746564000e0000000278000200000079000000"),
        (doc(&[("e", doc(&[]))]), "0d000000036500050000000000"),
        (doc(&[("h\u{e9}", str("\u{20ac}\u{1f600}"))]), "160000000268c3a90008000000e282acf09f98800000"),
        (
            doc(&[(
                "a",
                Tree::Array(vec![
                    Tree::Array(vec![Tree::Int(1)]),
                    Tree::Array(vec![Tree::Array(vec![Tree::Int(2)])]),
                ]),
            )]),
            "330000000461002b0000000430000c0000001030000100000000043100140000000430000c0000001030000200000000000000",
        ),
        (doc(&[]), "0500000000"),
    ];
    for (tree, bytes) in cases {
        assert_eq!(encode_tree(&tree).unwrap(), unhex(bytes), "{tree:?}");
        assert_eq!(decode_tree(&unhex(bytes)).unwrap(), tree);
    }
}

#[test]
fn the_index_finds_skynet_s_slots_and_replacing_gives_skynet_s_bytes() {
    // bson.encode_order("i", 1, "d", 2.5, "b", true, "l", bson.int64(7),
    //   "o", bson.objectid("000000000000000000000000"), "t", bson.date(5), "s", "str")
    let tree = doc(&[
        ("i", Tree::Int(1)),
        ("d", Tree::Double(2.5)),
        ("b", Tree::Bool(true)),
        ("l", special(&unhex("00120700000000000000"))),
        (
            "o",
            special(&[0, OBJECTID, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        ("t", special(&unhex("000905000000"))),
        ("s", str("str")),
    ]);
    let mut bytes = encode_tree(&tree).unwrap();
    let mut slots = Vec::new();
    index(&bytes, |name, slot| {
        slots.push((name.to_vec(), slot));
        Ok(())
    })
    .unwrap();
    let names: Vec<_> = slots.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(names, [&b"i"[..], b"d", b"b", b"l", b"o", b"t"]);
    for (_, slot) in &slots {
        assert_eq!(Slot::from_id(slot.id(), bytes.len()), Some(*slot));
    }
    // then, as skynet's __newindex: i = 42, d = 0.25, b = false, l = 99, o = ff.., t = date(6)
    let new_values: [&[u8]; 6] = [
        &42i32.to_le_bytes(),
        &0.25f64.to_le_bytes(),
        &[0],
        &99i64.to_le_bytes(),
        &[0xff; 12],
        &6000i64.to_le_bytes(),
    ];
    for ((_, slot), value) in slots.iter().zip(new_values) {
        assert_eq!(slot.width(), Some(value.len()));
        bytes[slot.offset..slot.offset + value.len()].copy_from_slice(value);
    }
    assert_eq!(
        bytes,
        unhex("4b0000001069002a000000016400000000000000d03f08620000126c006300000000000000076f00ffffffffffffffffffffffff0974007017000000000000027300040000007374720000")
    );
    assert_eq!(
        Slot::from_id(
            Slot {
                kind: INT64,
                offset: bytes.len() - 4
            }
            .id(),
            bytes.len()
        ),
        None
    );
    assert_eq!(
        Slot::from_id(
            Slot {
                kind: STRING,
                offset: 4
            }
            .id(),
            bytes.len()
        ),
        None
    );
}

#[test]
fn bad_values_are_refused_as_skynet_refuses_them() {
    let mut out = Vec::new();
    assert_eq!(put_key(&mut out, STRING, b"\xff"), Err(Error::Utf8));
    assert_eq!(put_string(&mut out, b"\xc0\x80"), Err(Error::Utf8));
    out.clear();
    assert_eq!(
        put_special(&mut out, Some(b"a"), 0, b"\0\x63"),
        Err(Error::Subtype(99))
    );
    assert_eq!(
        put_special(&mut out, Some(b"a"), 0, b"\0\x07abc"),
        Err(Error::ObjectId)
    );
    assert_eq!(
        put_special(&mut out, Some(b"a"), 0, b"\0\x09abc"),
        Err(Error::Date)
    );
    assert_eq!(
        put_special(&mut out, Some(b"a"), 0, b"\0\x11abc"),
        Err(Error::Timestamp)
    );
    assert_eq!(
        put_special(&mut out, Some(b"a"), 0, b"\0\x12abc"),
        Err(Error::Int64)
    );
    // (skynet's C reads out of bounds on these two)
    assert_eq!(
        put_special(&mut out, Some(b"a"), 0, b"\0\x0bnozero"),
        Err(Error::Regex)
    );
    assert_eq!(
        put_special(&mut out, Some(b"a"), 0, b"\0\x05"),
        Err(Error::Binary)
    );
    assert_eq!(Error::Subtype(99).to_string(), "Invalid subtype 99");
    assert!(
        out.is_empty(),
        "a refused special value writes no key: {out:?}"
    );
}

#[test]
fn skynet_s_utf8_rules() {
    for good in [
        &b"plain"[..],
        "h\u{e9}".as_bytes(),
        "\u{10ffff}".as_bytes(),
        b"\xed\xa0\x80",
        b"a\0b",
        b"",
    ] {
        assert!(valid_utf8(good), "{good:?}");
    }
    for bad in [
        &b"\x80"[..],
        b"\xc0\x80",
        b"\xe0\x80\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\xc3",
        b"\xe2\x82",
    ] {
        assert!(!valid_utf8(bad), "{bad:?}");
    }
}

#[test]
fn malformed_documents_are_errors() {
    let cases: [(&str, Error); 7] = [
        ("", Error::Block(0, 4)),
        ("04000000", Error::Block(0, -1)),
        ("0600000000", Error::Block(0, 1)),
        ("0600000000ff", Error::DocumentEnd),
        ("0800000002610000", Error::Block(0, 4)),
        ("0800000013610000", Error::Type(0x13)),
        ("0c000000026100ffffffff0000", Error::StringLength(-1)),
    ];
    for (bytes, error) in cases {
        assert_eq!(decode_tree(&unhex(bytes)), Err(error), "{bytes}");
    }
    let deep = {
        let mut tree = doc(&[]);
        for _ in 0..=MAX_DEPTH {
            tree = doc(&[("d", tree)]);
        }
        encode_tree(&tree).unwrap()
    };
    assert_eq!(decode_tree(&deep), Err(Error::DecodeDepth));
}

#[test]
fn array_keys_are_read_as_strtol_reads_them() {
    assert_eq!(array_index(b"0"), 1);
    assert_eq!(array_index(b"41"), 42);
    assert_eq!(array_index(b"x"), 1);
    assert_eq!(array_index(b"-3"), -2);
    assert_eq!(array_index(b"7up"), 8);
}

#[test]
fn object_ids() {
    assert_eq!(
        object_id(0x0102_0304, [5, 6, 7, 8, 9], 0x00ab_cdef),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 0xab, 0xcd, 0xef]
    );
    assert_eq!(
        object_id_from_hex(b"0123456789abcdef01234567").unwrap(),
        unhex("0123456789abcdef01234567")[..]
    );
    assert_eq!(object_id_from_hex(b"0123"), None);
}

fn tree_strategy() -> impl Strategy<Value = Tree> {
    let key = proptest::collection::vec(
        any::<u8>().prop_filter("no zero", |b| *b != 0 && *b < 0x80),
        0..6,
    );
    let leaf = prop_oneof![
        any::<f64>()
            .prop_filter("NaN != NaN", |d| !d.is_nan())
            .prop_map(Tree::Double),
        "[a-z\u{e9}\u{20ac}]{0,8}".prop_map(|s| Tree::Str(s.into_bytes())),
        any::<bool>().prop_map(Tree::Bool),
        any::<i64>().prop_map(Tree::Int),
        proptest::array::uniform12(any::<u8>())
            .prop_map(|id| Tree::Special([&[0, OBJECTID][..], &id].concat())),
        Just(special(&[0, NULL])),
        proptest::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| Tree::Special([&[0, BINARY, 0][..], &b].concat())),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec((key.clone(), inner.clone()), 0..6).prop_map(Tree::Doc),
            proptest::collection::vec(inner, 0..6).prop_map(Tree::Array),
        ]
    })
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_tree(&bytes);
        let _ = index(&bytes, |_, _| Ok(()));
    }

    #[test]
    fn a_changed_byte_of_a_document_decodes_or_fails_cleanly(
        tree in tree_strategy(), at in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let wrapped = Tree::Doc(vec![(b"t".to_vec(), tree)]);
        let mut bytes = encode_tree(&wrapped).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode_tree(&bytes);
        let _ = index(&bytes, |_, _| Ok(()));
    }

    #[test]
    fn what_is_written_decodes_back(tree in tree_strategy()) {
        let wrapped = Tree::Doc(vec![(b"t".to_vec(), tree)]);
        let bytes = encode_tree(&wrapped).unwrap();
        prop_assert_eq!(declared_length(&bytes), Some(bytes.len() as i32));
        prop_assert_eq!(decode_tree(&bytes).unwrap(), wrapped);
    }
}
