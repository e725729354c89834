//! Native tests of sproto: a tree of values stands in for Lua tables. Expected bytes come
//! from real skynet f19d1605 (its sprotoparser, sproto.core encode and pack, printed as
//! hex by a script run there) and from the examples in skynet's sproto README.

use std::collections::BTreeMap;
use std::ffi::CStr;

use super::decode::{decode, DecodeError, PairFields, Scalar, Sink};
use super::encode::{encode, EncodeError, Source};
use super::pack::{pack, unpack};
use super::parser::parse;
use super::schema::{Field, Schema};

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum V {
    Int(i64),
    Num(f64),
    Bool(bool),
    Str(Vec<u8>),
    Table(BTreeMap<K, V>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum K {
    Int(i64),
    Str(Vec<u8>),
}

fn s(text: &str) -> V {
    V::Str(text.as_bytes().to_vec())
}

fn t(fields: &[(&str, V)]) -> V {
    V::Table(
        fields
            .iter()
            .map(|(k, v)| (K::Str(k.as_bytes().to_vec()), v.clone()))
            .collect(),
    )
}

fn list(items: &[V]) -> V {
    V::Table(
        items
            .iter()
            .enumerate()
            .map(|(i, v)| (K::Int(i as i64 + 1), v.clone()))
            .collect(),
    )
}

fn key_of(v: &V) -> K {
    match v {
        V::Int(i) => K::Int(*i),
        V::Str(b) => K::Str(b.clone()),
        other => panic!("not a key: {other:?}"),
    }
}

fn type_name(v: &V) -> &'static str {
    match v {
        V::Int(_) | V::Num(_) => "number",
        V::Bool(_) => "boolean",
        V::Str(_) => "string",
        V::Table(_) => "table",
    }
}

/// A [`Source`] over a value tree.
struct TreeSource {
    stack: Vec<V>,
    /// the current structs (indexes into `stack`)
    structs: Vec<usize>,
    /// arrays being read: their stack index and, for keyed ones, the remaining values
    arrays: Vec<(usize, Vec<(K, V)>)>,
}

impl TreeSource {
    fn new(root: V) -> Self {
        TreeSource {
            stack: vec![root],
            structs: vec![0],
            arrays: Vec::new(),
        }
    }

    fn table(&self, at: usize) -> &BTreeMap<K, V> {
        match &self.stack[at] {
            V::Table(t) => t,
            other => panic!("not a table: {other:?}"),
        }
    }
}

impl Source for TreeSource {
    fn push_field(&mut self, field: &CStr) -> bool {
        let current = *self.structs.last().unwrap();
        match self
            .table(current)
            .get(&K::Str(field.to_bytes().to_vec()))
            .cloned()
        {
            Some(v) => {
                self.stack.push(v);
                true
            }
            None => false,
        }
    }
    fn take_integer(&mut self) -> Result<i64, &'static str> {
        match self.stack.last().unwrap() {
            V::Int(i) => {
                let i = *i;
                self.stack.pop();
                Ok(i)
            }
            V::Num(n) if n.fract() == 0.0 => {
                let i = *n as i64;
                self.stack.pop();
                Ok(i)
            }
            other => Err(type_name(other)),
        }
    }
    fn take_number(&mut self) -> f64 {
        match self.stack.pop().unwrap() {
            V::Int(i) => i as f64,
            V::Num(n) => n,
            _ => 0.0,
        }
    }
    fn take_boolean(&mut self) -> Result<bool, &'static str> {
        match self.stack.last().unwrap() {
            V::Bool(b) => {
                let b = *b;
                self.stack.pop();
                Ok(b)
            }
            other => Err(type_name(other)),
        }
    }
    fn string(&mut self) -> Result<&[u8], &'static str> {
        match self.stack.last().unwrap() {
            V::Str(bytes) => Ok(bytes),
            other => Err(type_name(other)),
        }
    }
    fn pop(&mut self) {
        self.stack.pop();
    }
    fn enter(&mut self) {
        self.structs.push(self.stack.len() - 1);
    }
    fn leave(&mut self) {
        self.structs.pop();
        self.stack.pop();
    }
    fn begin_array(&mut self, keyed: bool) -> Result<(), &'static str> {
        let at = self.stack.len() - 1;
        let V::Table(table) = &self.stack[at] else {
            return Err(type_name(&self.stack[at]));
        };
        let rest = if keyed {
            table
                .iter()
                .rev()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            Vec::new()
        };
        self.arrays.push((at, rest));
        Ok(())
    }
    fn push_element(&mut self, index: usize) -> bool {
        let (at, _) = self.arrays.last().unwrap();
        match self.table(*at).get(&K::Int(index as i64)).cloned() {
            Some(v) => {
                self.stack.push(v);
                true
            }
            None => false,
        }
    }
    fn push_next(&mut self, pair: Option<(&CStr, &CStr)>) -> bool {
        let Some((k, v)) = self.arrays.last_mut().unwrap().1.pop() else {
            return false;
        };
        let value = match pair {
            None => v,
            Some((kname, vname)) => {
                let key = match k {
                    K::Int(i) => V::Int(i),
                    K::Str(b) => V::Str(b),
                };
                V::Table(
                    [
                        (K::Str(kname.to_bytes().to_vec()), key),
                        (K::Str(vname.to_bytes().to_vec()), v),
                    ]
                    .into_iter()
                    .collect(),
                )
            }
        };
        self.stack.push(value);
        true
    }
    fn end_array(&mut self) {
        let (at, _) = self.arrays.pop().unwrap();
        self.stack.truncate(at);
    }
}

/// A [`Sink`] building a value tree.
struct TreeSink {
    stack: Vec<BTreeMap<K, V>>,
}

fn scalar(v: Scalar) -> V {
    match v {
        Scalar::Integer(i) => V::Int(i),
        Scalar::Number(n) => V::Num(n),
        Scalar::Boolean(b) => V::Bool(b),
        Scalar::Bytes(b) => V::Str(b.to_vec()),
    }
}

fn name_key(field: &Field) -> K {
    K::Str(field.name.to_bytes().to_vec())
}

impl<'s> Sink<'s> for TreeSink {
    fn set(&mut self, field: &'s Field, value: Scalar<'_>) -> Result<(), DecodeError<'s>> {
        self.stack
            .last_mut()
            .unwrap()
            .insert(name_key(field), scalar(value));
        Ok(())
    }
    fn push_table(&mut self, _items: usize, _fields: usize) -> Result<(), DecodeError<'s>> {
        self.stack.push(BTreeMap::new());
        Ok(())
    }
    fn set_table(&mut self, field: &'s Field) -> Result<(), DecodeError<'s>> {
        let table = self.stack.pop().unwrap();
        self.stack
            .last_mut()
            .unwrap()
            .insert(name_key(field), V::Table(table));
        Ok(())
    }
    fn set_element(&mut self, index: usize, value: Scalar<'_>) -> Result<(), DecodeError<'s>> {
        self.stack
            .last_mut()
            .unwrap()
            .insert(K::Int(index as i64), scalar(value));
        Ok(())
    }
    fn set_element_table(&mut self, index: usize) -> Result<(), DecodeError<'s>> {
        let table = self.stack.pop().unwrap();
        self.stack
            .last_mut()
            .unwrap()
            .insert(K::Int(index as i64), V::Table(table));
        Ok(())
    }
    fn set_keyed(&mut self, key: &'s Field) -> Result<bool, DecodeError<'s>> {
        let table = self.stack.pop().unwrap();
        let Some(k) = table.get(&name_key(key)).map(key_of) else {
            return Ok(false);
        };
        self.stack.last_mut().unwrap().insert(k, V::Table(table));
        Ok(true)
    }
    fn set_pair(
        &mut self,
        key: &'s Field,
        value: &'s Field,
    ) -> Result<PairFields, DecodeError<'s>> {
        let table = self.stack.pop().unwrap();
        let Some(k) = table.get(&name_key(key)).map(key_of) else {
            return Ok(PairFields::NoKey);
        };
        let Some(v) = table.get(&name_key(value)).cloned() else {
            return Ok(PairFields::NoValue);
        };
        self.stack.last_mut().unwrap().insert(k, v);
        Ok(PairFields::Both)
    }
}

const SCHEMA: &str = "
.Person {
	name 0 : string
	age 1 : integer
	marital 2 : boolean
	children 3 : *Person
}

.Data {
	numbers 0 : *integer
	bools 1 : *boolean
	number 2 : integer
	bignumber 3 : integer
	double 4 : double
	doubles 5 : *double
	fpn 6 : integer(2)
}

.AddressBook {
	person 0 : *Person(name)
	others 1 : *Person
	.Pair { key 0 : string
		value 1 : integer }
	dict 3 : *Pair()
	blob 9 : binary
}

.package {
	type 0 : integer
	session 1 : integer
	ud 2 : string
}

foobar 1 {
	request Data
	response {
		ok 0 : boolean
		fpns 1 : *integer(3)
	}
}
ping 2 {}
bye 3 { response nil }
query 4 { request AddressBook }
";

/// The bundle skynet's sprotoparser makes of [`SCHEMA`].
const BUNDLE: &str = "020000000000b9020000810000000200000000000b00000041646472657373426f6f6b6800000018000000060000000100080002000400020006000000706572736f6e16000000050000000100080004000400060000006f746865727318000000070000000100040008000400020004000400000064696374120000000400000006000400140004000000626c6f624a0000000200000000001000000041646472657373426f6f6b2e506169722c0000001100000004000000060001000200030000006b657913000000040000000200010004000500000076616c7565c10000000200000000000400000044617461af00000017000000050000000200010002000400070000006e756d626572731500000005000000040001000400040005000000626f6f6c731400000004000000020001000600060000006e756d6265721700000004000000020001000800090000006269676e756d6265721400000004000000080001000a0006000000646f75626c651700000005000000080001000c00040007000000646f75626c65731100000004000000020006000e000300000066706e7400000002000000000006000000506572736f6e600000001200000004000000060001000200040000006e616d651100000004000000020001000400030000006167651500000004000000040001000600070000006d61726974616c18000000050000000100080008000400080000006368696c6472656e490000000200000000000f000000666f6f6261722e726573706f6e73652c0000001000000004000000040001000200020000006f6b140000000500000002000800040004000400000066706e7358000000020000000000070000007061636b616765430000001200000004000000020001000200040000007479706515000000040000000200010004000700000073657373696f6e1000000004000000060001000600020000007564560000001400000004000000040006000a0006000000666f6f6261720e0000000200000006000400000070696e67130000000500000008000100010004000300000062796511000000030000000a000200050000007175657279";

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn schema() -> Schema {
    Schema::from_bundle(&parse(SCHEMA.as_bytes(), "=text").unwrap()).unwrap()
}

fn encode_value(schema: &Schema, ty: &str, v: V) -> Result<Vec<u8>, String> {
    let ty = schema.type_index(ty.as_bytes()).unwrap();
    let mut size = 16;
    loop {
        let mut out = vec![0; size];
        match encode(schema, ty, &mut TreeSource::new(v.clone()), &mut out) {
            Ok(n) => return Ok(out[..n].to_vec()),
            Err(EncodeError::Full) => size *= 2,
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn decode_value(schema: &Schema, ty: &str, bytes: &[u8]) -> Result<(V, usize), String> {
    let ty = schema.type_index(ty.as_bytes()).unwrap();
    let mut sink = TreeSink {
        stack: vec![BTreeMap::new()],
    };
    let n = decode(schema, ty, bytes, &mut sink).map_err(|e| e.to_string())?;
    Ok((V::Table(sink.stack.pop().unwrap()), n))
}

fn packed(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pack(bytes, &mut out);
    out
}

#[test]
fn the_parser_makes_skynet_s_bundle() {
    assert_eq!(hex(&parse(SCHEMA.as_bytes(), "=text").unwrap()), BUNDLE);
    assert_eq!(parse(b"", "=text").unwrap(), [0, 0]);
    assert_eq!(parse(b"  # nothing\n", "=text").unwrap(), [0, 0]);
}

#[test]
fn the_schema_reads_skynet_s_bundle() {
    let schema = Schema::from_bundle(&unhex(BUNDLE)).unwrap();
    let names: Vec<_> = schema
        .types
        .iter()
        .map(|t| t.name.to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "AddressBook",
            "AddressBook.Pair",
            "Data",
            "Person",
            "foobar.response",
            "package"
        ]
    );
    let tags: Vec<_> = schema.protocols.iter().map(|p| p.tag).collect();
    assert_eq!(tags, [1, 2, 3, 4]);
    let bye = schema.protocol_by_name(b"bye").unwrap();
    assert!(bye.confirm && bye.request.is_none() && bye.response.is_none());
    assert!(schema
        .dump()
        .contains("\tdict (3) *AddressBook.Pair key[0] value[1]\n"));
}

/// (type, value, encoded hex, packed hex) from real skynet.
#[allow(clippy::approx_constant)] // -3.14159 is the vector's fixed-point input, not π
fn skynet_vectors() -> Vec<(&'static str, V, &'static str, &'static str)> {
    let big = 1i64 << 32;
    vec![
        ("Person", t(&[("name", s("Alice")), ("age", V::Int(13)), ("marital", V::Bool(false))]),
         "030000001c00020005000000416c696365", "51031c02f105416c69630165"),
        ("Person", t(&[("name", s("Bob")), ("age", V::Int(40)), ("children", list(&[
            t(&[("name", s("Alice")), ("age", V::Int(13))]),
            t(&[("name", s("Carol")), ("age", V::Int(5))])]))]),
         "0400000052000100000003000000426f62260000000f000000020000001c0005000000416c6963650f000000020000000c00050000004361726f6c",
         "51045201c403426f2362260fa2021c05f8416c696365110f02c50c05436107726f6c"),
        ("Data", t(&[("numbers", list(&[V::Int(1), V::Int(2), V::Int(3), V::Int(4), V::Int(5)]))]),
         "0100000015000000040100000002000000030000000400000005000000", "110115230401022203040205"),
        ("Data", t(&[("numbers", list(&[V::Int(big + 1), V::Int(big + 2), V::Int(big + 3)]))]),
         "010000001900000008010000000100000002000000010000000300000001000000", "1101192308010122020122030100"),
        ("Data", t(&[("numbers", list(&[V::Int(1), V::Int(-2), V::Int(1 << 40), V::Int(3)]))]),
         "0100000021000000080100000000000000feffffffffffffff00000000000100000300000000000000",
         "110121030801fefeffffffffffff41ff01020300"),
        ("Data", t(&[("bools", list(&[V::Bool(false), V::Bool(true), V::Bool(false)]))]),
         "02000100000003000000000100", "450201030801"),
        ("Data", t(&[("number", V::Int(100000)), ("bignumber", V::Int(-10000000000))]),
         "030003000000000004000000a086010008000000001cf4abfdffffff", "0503037104a08601e1081cf4ab0ffdffffff"),
        ("Data", t(&[("double", V::Num(0.01171875)), ("doubles", list(&[V::Num(0.01171875), V::Int(23), V::Int(4)]))]),
         "030007000000000008000000000000000000883f1900000008000000000000883f00000000000037400000000000001040",
         "05030701081c883f19810888813f378140100140"),
        ("Data", t(&[("fpn", V::Num(1.82))]), "02000b006e01", "35020b6e01"),
        ("Data", t(&[("numbers", list(&[])), ("bools", list(&[])), ("doubles", list(&[])),
                     ("number", V::Int(-1)), ("bignumber", V::Int(0x7ffe))]),
         "0600000000000000feff01000000000000000000000004000000ffffffff00000000", "010607feff0140043cffffffff00"),
        ("Data", t(&[("number", V::Int(0x7fff)), ("bignumber", V::Int(-2147483648)), ("fpn", V::Num(-3.14159))]),
         "05000300000000000300000004000000ff7f0000040000000000008004000000c6feffff",
         "05050311030413ff7f041880040fc6feffff"),
        ("AddressBook", t(&[("person", t(&[("Alice", t(&[("name", s("Alice")), ("age", V::Int(1))]))])),
                            ("dict", t(&[("x", V::Int(1))])), ("blob", V::Str(vec![0, 1, 2]))]),
         "050000000300000009000000130000000f00000002000000040005000000416c6963650f0000000b000000020000000400010000007803000000000102",
         "110503110913110f02c50405416c8f6963650f0b88020462017803180102"),
        ("foobar.response", t(&[("ok", V::Bool(true)), ("fpns", list(&[V::Num(1.5), V::Num(-0.001)]))]),
         "0200040000000900000004dc050000ffffffff", "450204099c04dc05ff07ffffff"),
    ]
}

#[test]
fn encode_and_pack_give_skynet_s_bytes() {
    let schema = schema();
    for (ty, value, encoded, packed_hex) in skynet_vectors() {
        let bytes = encode_value(&schema, ty, value.clone()).unwrap();
        assert_eq!(hex(&bytes), encoded, "{ty} {value:?}");
        assert_eq!(hex(&packed(&bytes)), packed_hex, "{ty} {value:?}");
        let mut back = Vec::new();
        unpack(&packed(&bytes), &mut back, 1 << 20).unwrap();
        assert_eq!(&back[..bytes.len()], &bytes[..]);
    }
}

#[test]
#[allow(clippy::approx_constant)] // -3.14: the vector's value at 2 digits, not π
fn decode_gives_back_what_was_encoded() {
    let schema = schema();
    for (ty, value, encoded, _) in skynet_vectors() {
        let (decoded, taken) = decode_value(&schema, ty, &unhex(encoded)).unwrap();
        assert_eq!(taken, encoded.len() / 2);
        let expected = match (ty, &value) {
            // doubles come back as numbers, fixed point as divided numbers
            ("Data", _) if encoded == "030007000000000008000000000000000000883f1900000008000000000000883f00000000000037400000000000001040" => {
                t(&[("double", V::Num(0.01171875)), ("doubles", list(&[V::Num(0.01171875), V::Num(23.0), V::Num(4.0)]))])
            }
            ("Data", _) if encoded == "02000b006e01" => t(&[("fpn", V::Num(1.82))]),
            ("Data", _) if encoded.starts_with("0500") => {
                t(&[("number", V::Int(0x7fff)), ("bignumber", V::Int(-2147483648)), ("fpn", V::Num(-3.14))])
            }
            ("foobar.response", _) => t(&[("ok", V::Bool(true)), ("fpns", list(&[V::Num(1.5), V::Num(-0.001)]))]),
            _ => value.clone(),
        };
        assert_eq!(decoded, expected, "{ty}");
    }
}

#[test]
fn decode_ignores_unknown_tags_and_leaves_trailing_bytes() {
    let schema = schema();
    // a Person with a field at tag 8 (a newer schema's), then two trailing bytes
    let msg = unhex(
        "040000000e000b00040005000000416161616100 00"
            .replace(' ', "")
            .as_str(),
    );
    let (v, taken) = decode_value(&schema, "Person", &msg).unwrap();
    assert_eq!(v, t(&[("name", s("Aaaaa")), ("age", V::Int(6))]));
    assert_eq!(taken, msg.len() - 2);
}

#[test]
fn encode_errors_name_the_field() {
    let schema = schema();
    let err = encode_value(&schema, "Person", t(&[("age", s("x"))])).unwrap_err();
    assert_eq!(err, "Person.age[0] is not an integer (Is a string)");
    let err = encode_value(
        &schema,
        "Data",
        t(&[("bools", list(&[V::Bool(true), V::Int(1)]))]),
    )
    .unwrap_err();
    assert_eq!(err, "Data.bools[2] is not a boolean (Is a number)");
    let err = encode_value(&schema, "Person", t(&[("children", V::Int(3))])).unwrap_err();
    assert_eq!(
        err,
        "Person.children(1) should be a table or an userdata with metamethods (Is a number)"
    );
    let err = encode_value(&schema, "Person", t(&[("name", V::Int(3))])).unwrap_err();
    assert_eq!(err, "Person.name[0] is not a string (Is a number)");
    // a cycle is too deep
    let mut deep = t(&[("name", s("x"))]);
    for _ in 0..70 {
        deep = t(&[("children", list(&[deep]))]);
    }
    assert_eq!(
        encode_value(&schema, "Person", deep).unwrap_err(),
        "The table is too deep"
    );
}

#[test]
fn decode_refuses_malformed_messages() {
    let schema = schema();
    for bad in [
        "",
        "01",
        "0100",
        "01000000",
        "010000000500000041",
        "01000400",
    ] {
        assert!(
            decode_value(&schema, "Person", &unhex(bad)).is_err(),
            "{bad}"
        );
    }
    // a keyed array's element without its key: `others` (tag 1) moved to `person` (tag 0)
    let others = encode_value(
        &schema,
        "AddressBook",
        t(&[("others", list(&[t(&[("age", V::Int(1))])]))]),
    )
    .unwrap();
    assert_eq!(&others[..6], &[2, 0, 1, 0, 0, 0]);
    let mut person = vec![1, 0, 0, 0];
    person.extend_from_slice(&others[6..]);
    assert_eq!(
        decode_value(&schema, "AddressBook", &person).unwrap_err(),
        "Can't find main index (tag=0) in [person]"
    );
    // a struct shorter than its length says
    let mut short = encode_value(
        &schema,
        "Person",
        t(&[("children", list(&[t(&[("age", V::Int(1))])]))]),
    )
    .unwrap();
    short.push(0);
    let at = 2 + 2 * 2; // count, skip word, children word
    short[at] += 1; // the array's length
    short[at + 4] += 1; // the child's length
    assert_eq!(
        decode_value(&schema, "Person", &short).unwrap_err(),
        "decode error"
    );
}

#[test]
fn the_parser_reports_what_skynet_s_does() {
    let err = |text: &str| parse(text.as_bytes(), "=text").unwrap_err().0;
    assert_eq!(
        err(".A {\n a 0 : integer\n b 0 : integer }"),
        "redefine tag 0 in type A"
    );
    assert_eq!(
        err(".A { a 0 : integer\n a 1 : integer }"),
        "redefine a in type A"
    );
    assert_eq!(err(".A { a 0 : B }"), "Undefined type B in type A");
    assert_eq!(err(".A {}\n.A {}"), "redefined A");
    assert_eq!(
        err("p 1 { request X }"),
        "Undefined request type X in protocol p"
    );
    assert_eq!(
        err(".A {}\np 1 {}\nq 1 {}"),
        "redefined protocol tag 1 at q"
    );
    assert_eq!(
        err(".A {\n a 0 : integer\n\n b : }"),
        "syntax error at [=text] line (4)"
    );
    assert_eq!(
        err(".P { a 0 : integer b 1 : integer c 2 : integer }\n.A { m 0 : *P() }"),
        "Invalid map definition: m, must only have two fields"
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = ".A {".repeat(100) + &"}".repeat(100);
    let err = parse(deep.as_bytes(), "=text").unwrap_err().0;
    assert!(err.contains("nested deeper than 64"), "{err}");
}

#[test]
fn nested_names_resolve_from_the_inside_out() {
    let text = ".A { .B { x 0 : integer } b 0 : B }\n.B { y 0 : string }\n.C { b 0 : B c 1 : A.B }";
    let schema = Schema::from_bundle(&parse(text.as_bytes(), "=text").unwrap()).unwrap();
    let type_of = |ty: &str, field: usize| {
        let t = &schema.types[schema.type_index(ty.as_bytes()).unwrap()];
        match t.fields[field].kind {
            super::schema::Kind::Struct(i) => schema.types[i].name.to_str().unwrap().to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(type_of("A", 0), "A.B");
    assert_eq!(type_of("C", 0), "B");
    assert_eq!(type_of("C", 1), "A.B");
}

#[test]
fn bad_bundles_are_refused() {
    let bundle = unhex(BUNDLE);
    for cut in [0, 1, 2, 10, 100, bundle.len() - 1] {
        assert!(Schema::from_bundle(&bundle[..cut]).is_err(), "{cut}");
    }
}

proptest::proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let schema = schema();
        for ty in ["Person", "Data", "AddressBook", "foobar.response"] {
            let _ = decode_value(&schema, ty, &bytes);
        }
    }

    #[test]
    fn reading_any_bundle_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = Schema::from_bundle(&bytes);
    }

    #[test]
    fn parsing_any_text_never_panics(text in "[ a-z0-9.:*(){}#\n]{0,80}") {
        let _ = parse(text.as_bytes(), "=text");
    }

    #[test]
    fn persons_round_trip(name in "[a-z]{0,12}", age in proptest::num::i64::ANY, marital in proptest::bool::ANY,
                          numbers in proptest::collection::vec(proptest::num::i64::ANY, 0..20)) {
        let schema = schema();
        let person = t(&[("name", V::Str(name.into_bytes())), ("age", V::Int(age)), ("marital", V::Bool(marital))]);
        let bytes = encode_value(&schema, "Person", person.clone()).unwrap();
        proptest::prop_assert_eq!(decode_value(&schema, "Person", &bytes).unwrap().0, person);
        let data = t(&[("numbers", list(&numbers.iter().map(|&n| V::Int(n)).collect::<Vec<_>>()))]);
        let bytes = encode_value(&schema, "Data", data.clone()).unwrap();
        proptest::prop_assert_eq!(decode_value(&schema, "Data", &bytes).unwrap().0, data);
    }
}
