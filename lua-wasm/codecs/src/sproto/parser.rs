//! `sprotoparser`: sproto schema text to the schema bundle `sproto.core.newproto` reads,
//! the same bytes as skynet's parser makes (which is built on lpeg; this one is written by
//! hand to the same grammar). Types go by name, protocols by tag, fields by tag.
//!
//! ```text
//! .Person {                    # a type; types nest (Person.PhoneNumber)
//!     name 0 : string
//!     phone 1 : *PhoneNumber(number)   # an array, keyed by a field: a map
//!     height 2 : integer(2)    # fixed point, 2 decimal digits
//! }
//! login 1 {                    # a protocol
//!     request Person
//!     response { ok 0 : boolean }
//! }
//! ```

use std::collections::BTreeMap;

/// A schema that does not parse or does not check out, with skynet's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn fail<T>(message: String) -> Result<T, ParseError> {
    Err(ParseError(message))
}

/// A field as written.
#[derive(Debug, Clone)]
struct FieldDef {
    name: String,
    tag: u32,
    array: bool,
    type_name: String,
    /// `(name)` or `()` after a struct array.
    key: Option<String>,
    /// `(n)` after `integer`.
    decimal: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct ProtocolDef {
    tag: u32,
    request: Option<String>,
    response: Option<String>,
    confirm: bool,
}

/// What the text defines: types by full name, protocols by name.
#[derive(Default)]
struct Definitions {
    types: BTreeMap<String, Vec<FieldDef>>,
    protocols: BTreeMap<String, ProtocolDef>,
}

/// Parses schema text; `file` names it in syntax errors (skynet's default is `=text`).
pub fn parse(text: &[u8], file: &str) -> Result<Vec<u8>, ParseError> {
    let mut p = Parser {
        text,
        at: 0,
        depth: 0,
        line: 1,
        furthest_line: 1,
        file,
    };
    let mut defs = Definitions::default();
    p.items(&mut defs).map_err(|e| match e {
        Failure::Syntax => ParseError(format!(
            "syntax error at [{}] line ({})",
            p.file, p.furthest_line
        )),
        Failure::Semantic(e) => e,
    })?;
    check_protocols(&defs)?;
    let types = resolve_types(&defs)?;
    pack_group(&types, &defs.protocols)
}

enum Failure {
    Syntax,
    Semantic(ParseError),
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Self {
        Failure::Semantic(e)
    }
}

/// The deepest nesting of type definitions (`.A { .B { ...`) a schema may have.
const MAX_NESTING: usize = 64;

struct Parser<'t> {
    text: &'t [u8],
    at: usize,
    /// How deep in nested type definitions the parser is.
    depth: usize,
    line: usize,
    furthest_line: usize,
    file: &'t str,
}

type Parsed<T> = Result<T, Failure>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// Skips spaces, tabs, newlines and `#` comments; whether there were any.
    fn blanks(&mut self) -> bool {
        let start = self.at;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => self.at += 1,
                b'\n' => self.newline(1),
                b'\r' if self.text.get(self.at + 1) == Some(&b'\n') => self.newline(2),
                b'#' => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        if self.peek() == Some(b'\r') && self.text.get(self.at + 1) == Some(&b'\n')
                        {
                            break;
                        }
                        self.at += 1;
                    }
                }
                _ => break,
            }
        }
        self.at > start
    }

    fn newline(&mut self, len: usize) {
        self.at += len;
        self.line += 1;
        self.furthest_line = self.furthest_line.max(self.line);
    }

    fn expect(&mut self, c: u8) -> Parsed<()> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(Failure::Syntax)
        }
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`
    fn word(&mut self) -> Parsed<String> {
        let start = self.at;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.at += 1,
            _ => return Err(Failure::Syntax),
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.at += 1;
        }
        Ok(String::from_utf8_lossy(&self.text[start..self.at]).into_owned())
    }

    /// `word(.word)*`
    fn type_name(&mut self) -> Parsed<String> {
        let mut name = self.word()?;
        while self.peek() == Some(b'.') {
            self.at += 1;
            name.push('.');
            name.push_str(&self.word()?);
        }
        Ok(name)
    }

    fn number(&mut self) -> Parsed<u32> {
        let start = self.at;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.at += 1;
        }
        if self.at == start {
            return Err(Failure::Syntax);
        }
        let digits = std::str::from_utf8(&self.text[start..self.at]).expect("ASCII digits");
        digits.parse().map_err(|_| Failure::Syntax)
    }

    /// The top level: types and protocols.
    fn items(&mut self, defs: &mut Definitions) -> Parsed<()> {
        loop {
            self.blanks();
            match self.peek() {
                None => return Ok(()),
                Some(b'.') => {
                    self.at += 1;
                    let name = self.word()?;
                    if defs.types.contains_key(&name) {
                        return Err(ParseError(format!("redefined {name}")).into());
                    }
                    self.blanks();
                    let fields = self.structure(&name, defs)?;
                    defs.types.insert(name, fields);
                }
                Some(_) => {
                    let (name, protocol) = self.protocol(defs)?;
                    if defs.protocols.contains_key(&name) {
                        return Err(ParseError(format!("redefined {name}")).into());
                    }
                    defs.protocols.insert(name, protocol);
                }
            }
        }
    }

    /// `{ fields and nested types }` of the type `name`; nested types are defined in
    /// `defs` as `name.Nested`.
    fn structure(&mut self, name: &str, defs: &mut Definitions) -> Parsed<Vec<FieldDef>> {
        if self.depth >= MAX_NESTING {
            return Err(
                ParseError(format!("{name}: types nested deeper than {MAX_NESTING}")).into(),
            );
        }
        self.depth += 1;
        let fields = self.structure_body(name, defs);
        self.depth -= 1;
        fields
    }

    fn structure_body(&mut self, name: &str, defs: &mut Definitions) -> Parsed<Vec<FieldDef>> {
        self.expect(b'{')?;
        let mut fields: Vec<FieldDef> = Vec::new();
        loop {
            self.blanks();
            match self.peek() {
                Some(b'}') => {
                    self.at += 1;
                    break;
                }
                Some(b'.') => {
                    self.at += 1;
                    let nested = format!("{name}.{}", self.word()?);
                    self.blanks();
                    let nested_fields = self.structure(&nested, defs)?;
                    if defs.types.contains_key(&nested) {
                        return Err(ParseError(format!("redefined {nested}")).into());
                    }
                    defs.types.insert(nested, nested_fields);
                }
                Some(_) => {
                    let field = self.field()?;
                    if fields.iter().any(|f| f.name == field.name) {
                        return Err(
                            ParseError(format!("redefine {} in type {name}", field.name)).into(),
                        );
                    }
                    if fields.iter().any(|f| f.tag == field.tag) {
                        return Err(ParseError(format!(
                            "redefine tag {} in type {name}",
                            field.tag
                        ))
                        .into());
                    }
                    fields.push(field);
                }
                None => return Err(Failure::Syntax),
            }
        }
        fields.sort_by_key(|f| f.tag);
        Ok(fields)
    }

    /// `name tag : [*]type[(key)|(decimal)]`
    fn field(&mut self) -> Parsed<FieldDef> {
        let name = self.word()?;
        if !self.blanks() {
            return Err(Failure::Syntax);
        }
        let tag = self.number()?;
        self.blanks();
        self.expect(b':')?;
        self.blanks();
        let array = self.peek() == Some(b'*');
        if array {
            self.at += 1;
        }
        let type_name = self.type_name()?;
        let mut key = None;
        let mut decimal = None;
        if self.peek() == Some(b'(') {
            self.at += 1;
            self.blanks();
            match self.peek() {
                Some(c) if c.is_ascii_digit() => decimal = Some(self.number()?),
                Some(c) if c.is_ascii_alphabetic() || c == b'_' => key = Some(self.word()?),
                _ => key = Some(String::new()),
            }
            self.blanks();
            self.expect(b')')?;
        }
        if type_name == "integer" {
            if let Some(key) = key.take() {
                // skynet's parser takes the parenthesis after `integer` as the precision
                return Err(ParseError(format!("Invalid decimal ({key}) of {name}")).into());
            }
        } else if let Some(digits) = decimal.take() {
            return Err(ParseError(format!("Invalid map index :{digits}")).into());
        }
        if key.is_some() && !array {
            return Err(ParseError(format!("{name}: only an array can have a key")).into());
        }
        Ok(FieldDef {
            name,
            tag,
            array,
            type_name,
            key,
            decimal,
        })
    }

    /// `name tag { request T; response T | { ... } | nil }`
    fn protocol(&mut self, defs: &mut Definitions) -> Parsed<(String, ProtocolDef)> {
        let name = self.word()?;
        if !self.blanks() {
            return Err(Failure::Syntax);
        }
        let tag = self.number()?;
        self.blanks();
        self.expect(b'{')?;
        let mut protocol = ProtocolDef {
            tag,
            ..ProtocolDef::default()
        };
        let mut seen = Vec::new();
        loop {
            self.blanks();
            if self.peek() == Some(b'}') {
                self.at += 1;
                break;
            }
            let which = self.word()?;
            if which != "request" && which != "response" {
                return Err(Failure::Syntax);
            }
            if !self.blanks() {
                return Err(Failure::Syntax);
            }
            if seen.contains(&which) {
                return Err(ParseError(format!("redefine {which} in protocol {name}")).into());
            }
            let type_name = if self.peek() == Some(b'{') {
                let inline = format!("{name}.{which}");
                let fields = self.structure(&inline, defs)?;
                defs.types.insert(inline.clone(), fields);
                inline
            } else {
                self.type_name()?
            };
            match (which.as_str(), type_name.as_str()) {
                ("response", "nil") => protocol.confirm = true,
                (_, "nil") => {}
                ("request", _) => protocol.request = Some(type_name),
                _ => protocol.response = Some(type_name),
            }
            seen.push(which);
        }
        Ok((name, protocol))
    }
}

fn check_protocols(defs: &Definitions) -> Result<(), ParseError> {
    let mut tags = BTreeMap::new();
    for (name, p) in &defs.protocols {
        if tags.insert(p.tag, name).is_some() {
            return fail(format!("redefined protocol tag {} at {name}", p.tag));
        }
        for (what, t) in [("request", &p.request), ("response", &p.response)] {
            if let Some(t) = t {
                if !defs.types.contains_key(t) {
                    return fail(format!("Undefined {what} type {t} in protocol {name}"));
                }
            }
        }
    }
    Ok(())
}

/// The built-in types: their number, and whether they are `binary`.
fn builtin(name: &str) -> Option<(u32, bool)> {
    match name {
        "integer" => Some((0, false)),
        "boolean" => Some((1, false)),
        "string" => Some((2, false)),
        "binary" => Some((2, true)),
        "double" => Some((3, false)),
        _ => None,
    }
}

/// The full name of type `name` used inside type `scope`: a built-in type, else the
/// innermost enclosing scope's `scope.name`, else the global `name`.
fn resolve(defs: &Definitions, scope: &str, name: &str) -> Option<String> {
    if builtin(name).is_some() {
        return Some(name.to_string());
    }
    let mut scope = scope;
    loop {
        let full = format!("{scope}.{name}");
        if defs.types.contains_key(&full) {
            return Some(full);
        }
        match scope.rfind('.') {
            Some(dot) => scope = &scope[..dot],
            None => return defs.types.contains_key(name).then(|| name.to_string()),
        }
    }
}

/// Every field's type name made full.
fn resolve_types(defs: &Definitions) -> Result<BTreeMap<String, Vec<FieldDef>>, ParseError> {
    let mut types = BTreeMap::new();
    for (name, fields) in &defs.types {
        let mut resolved = fields.clone();
        for f in &mut resolved {
            match resolve(defs, name, &f.type_name) {
                Some(full) => f.type_name = full,
                None => return fail(format!("Undefined type {} in type {name}", f.type_name)),
            }
        }
        types.insert(name.clone(), resolved);
    }
    Ok(types)
}

/// A length-prefixed object.
fn object(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A field word holding `v`.
fn value_word(out: &mut Vec<u8>, v: u32) -> Result<(), ParseError> {
    let word = (u64::from(v) + 1) * 2;
    let word = u16::try_from(word).map_err(|_| ParseError(format!("{v} is too large")))?;
    out.extend_from_slice(&word.to_le_bytes());
    Ok(())
}

const SKIP_ONE: [u8; 2] = [1, 0];
const IN_DATA: [u8; 2] = [0, 0];

/// `.group { type 0 : *type; protocol 1 : *protocol }`
fn pack_group(
    types: &BTreeMap<String, Vec<FieldDef>>,
    protocols: &BTreeMap<String, ProtocolDef>,
) -> Result<Vec<u8>, ParseError> {
    if types.is_empty() && protocols.is_empty() {
        return Ok(vec![0, 0]);
    }
    // ids in name order (BTreeMap's byte order, as Lua's sort of the names)
    let ids: BTreeMap<&str, u32> = types
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i as u32))
        .collect();
    let mut type_list = Vec::new();
    for (name, fields) in types {
        object(&mut type_list, &pack_type(name, fields, types, &ids)?);
    }
    let mut out = Vec::new();
    if protocols.is_empty() {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&IN_DATA);
        object(&mut out, &type_list);
        return Ok(out);
    }
    let mut by_tag: Vec<(&String, &ProtocolDef)> = protocols.iter().collect();
    by_tag.sort_by_key(|(_, p)| p.tag);
    let mut protocol_list = Vec::new();
    for (name, p) in by_tag {
        object(&mut protocol_list, &pack_protocol(name, p, &ids)?);
    }
    out.extend_from_slice(&[2, 0]);
    out.extend_from_slice(&IN_DATA);
    out.extend_from_slice(&IN_DATA);
    object(&mut out, &type_list);
    object(&mut out, &protocol_list);
    Ok(out)
}

/// `.type { name 0 : string; fields 1 : *field }`
fn pack_type(
    name: &str,
    fields: &[FieldDef],
    types: &BTreeMap<String, Vec<FieldDef>>,
    ids: &BTreeMap<&str, u32>,
) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::new();
    if fields.is_empty() {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&IN_DATA);
        object(&mut out, name.as_bytes());
        return Ok(out);
    }
    let mut list = Vec::new();
    for f in fields {
        object(&mut list, &pack_field(f, types, ids)?);
    }
    out.extend_from_slice(&[2, 0]);
    out.extend_from_slice(&IN_DATA);
    out.extend_from_slice(&IN_DATA);
    object(&mut out, name.as_bytes());
    object(&mut out, &list);
    Ok(out)
}

/// `.field { name 0; buildin 1; type 2; tag 3; array 4; key 5; map 6 }`
fn pack_field(
    f: &FieldDef,
    types: &BTreeMap<String, Vec<FieldDef>>,
    ids: &BTreeMap<&str, u32>,
) -> Result<Vec<u8>, ParseError> {
    // a map's key: the tag of the named field of the struct, or for `()` the first of
    // exactly two fields (whose second is the value)
    let mut key_tag = None;
    let mut map = false;
    if let Some(key) = &f.key {
        let sub = types
            .get(&f.type_name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let key_field = if key.is_empty() {
            map = true;
            if sub.len() != 2 {
                return fail(format!(
                    "Invalid map definition: {}, must only have two fields",
                    f.name
                ));
            }
            sub.iter().min_by_key(|s| s.tag)
        } else {
            sub.iter().find(|s| &s.name == key)
        };
        match key_field {
            Some(k) if builtin(&k.type_name).is_some() => key_tag = Some(k.tag),
            Some(k) => return fail(format!("Invalid map index :{}", k.name)),
            None => return fail(format!("Invalid map index :{key}")),
        }
    }
    let count: u8 = match (f.array, key_tag.is_some(), map) {
        (false, _, _) => 4,
        (true, false, _) => 5,
        (true, true, false) => 6,
        (true, true, true) => 7,
    };
    let mut out = vec![count, 0];
    out.extend_from_slice(&IN_DATA); // name (tag 0)
    match builtin(&f.type_name) {
        Some((number, binary)) => {
            value_word(&mut out, number)?; // buildin (tag 1)
            match (binary, f.decimal) {
                (true, _) => value_word(&mut out, 1)?, // binary: a kind of string (tag 2)
                (false, Some(digits)) => value_word(&mut out, digits)?, // precision (tag 2)
                (false, None) => out.extend_from_slice(&SKIP_ONE),
            }
        }
        None => {
            out.extend_from_slice(&SKIP_ONE); // no buildin (tag 1)
            value_word(&mut out, ids[f.type_name.as_str()])?; // type (tag 2)
        }
    }
    value_word(&mut out, f.tag)?; // tag (tag 3)
    if f.array {
        value_word(&mut out, 1)?; // array (tag 4)
        if let Some(key) = key_tag {
            value_word(&mut out, key)?; // key (tag 5)
            if map {
                value_word(&mut out, 1)?; // map (tag 6)
            }
        }
    }
    object(&mut out, f.name.as_bytes());
    Ok(out)
}

/// `.protocol { name 0; tag 1; request 2; response 3; confirm 4 }`
fn pack_protocol(
    name: &str,
    p: &ProtocolDef,
    ids: &BTreeMap<&str, u32>,
) -> Result<Vec<u8>, ParseError> {
    let id = |t: &String| {
        ids.get(t.as_str())
            .copied()
            .ok_or_else(|| ParseError(format!("Protocol {name} request type {t} not found")))
    };
    let mut words = vec![IN_DATA];
    let mut word = Vec::new();
    value_word(&mut word, p.tag)?;
    words.push([word[0], word[1]]);
    let mut push = |v: Option<u32>| -> Result<(), ParseError> {
        match v {
            Some(v) => {
                let mut word = Vec::new();
                value_word(&mut word, v)?;
                words.push([word[0], word[1]]);
            }
            None => words.push(SKIP_ONE),
        }
        Ok(())
    };
    if p.request.is_some() || p.response.is_some() || p.confirm {
        push(p.request.as_ref().map(&id).transpose()?)?;
        if let Some(response) = &p.response {
            push(Some(id(response)?))?;
        } else if p.confirm {
            push(None)?;
            push(Some(1))?;
        } else {
            // only the request: three fields
        }
    }
    let mut out = vec![words.len() as u8, 0];
    for w in &words {
        out.extend_from_slice(w);
    }
    object(&mut out, name.as_bytes());
    Ok(out)
}
