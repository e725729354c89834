//! A MongoDB protocol peer for the Lua driver's tests. No MongoDB server can be installed
//! on this kind of machine (Debian 12 has no package, MongoDB's download site is not
//! reachable, and no package registry here carries `mongod`), so the driver is tested
//! against this instead — and it says so, it is no MongoDB:
//!
//! - OP_MSG over real TCP on loopback, each request checked as mongod checks it (one body
//!   section, lengths that add up) and its document read with the `bson` crate, MongoDB's
//!   own Rust BSON, which shares no code with skywasm's;
//! - SCRAM-SHA-1 checked as mongod checks it (the client's proof against the stored key,
//!   the server's signature sent back), commands refused before authentication;
//! - an in-memory store with the subset of MongoDB's commands and operators the tests use:
//!   insert/update/delete/find/getMore/killCursors/count/aggregate/findAndModify,
//!   createIndexes (unique, expireAfterSeconds)/dropIndexes/drop, sessions and
//!   transactions (an abort puts the store back as it was);
//! - misbehaviours on request: `skywasmHangUp` closes the connection without a reply,
//!   `skywasmGarbage` answers with a message that is not an OP_MSG, `skywasmBadBson` with
//!   an OP_MSG whose document is malformed inside.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bson::{doc, Bson, DateTime, Document};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

const OP_MSG: i32 = 2013;
const MORE_TO_COME: i32 = 2;
/// mongod's default SCRAM-SHA-1 iteration count.
const ITERATIONS: u32 = 10_000;
/// find's default first batch.
const DEFAULT_BATCH: usize = 101;

/// A running peer; it lives as long as the test process (its threads are detached).
pub struct MongoPeer {
    /// Its loopback port.
    pub port: u16,
    /// Requests whose documents the `bson` crate could not read (they should be none).
    pub rejected: Arc<Mutex<Vec<String>>>,
}

#[derive(Default, Clone)]
struct Index {
    name: String,
    key: Document,
    unique: bool,
    expire_after: Option<i64>,
}

#[derive(Default, Clone)]
struct Collection {
    docs: Vec<Document>,
    indexes: Vec<Index>,
}

#[derive(Default)]
struct Store {
    collections: HashMap<String, Collection>,
    cursors: HashMap<i64, (String, VecDeque<Document>)>,
    next_cursor: i64,
    /// Transactions under way, by session: their number, and the collections as they
    /// were before (what an abort puts back).
    transactions: HashMap<Vec<u8>, (i64, HashMap<String, Collection>)>,
}

struct Credentials {
    user: String,
    /// SCRAM's salted password, from MongoDB's digest of user and password.
    salted: Vec<u8>,
    salt: Vec<u8>,
}

/// What one connection remembers: its login.
#[derive(Default)]
struct Conversation {
    authenticated: bool,
    /// The client-first-bare and server-first messages of a SCRAM exchange under way.
    scram: Option<(String, String)>,
    proved: bool,
}

type HmacSha1 = Hmac<Sha1>;

fn hmac(key: &[u8], text: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha1::new_from_slice(key).unwrap();
    mac.update(text);
    mac.finalize().into_bytes().to_vec()
}

fn pbkdf2_sha1(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut u = hmac(password, &[salt, &[0, 0, 0, 1]].concat());
    let mut out = u.clone();
    for _ in 1..iterations {
        u = hmac(password, &u);
        out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
    }
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl MongoPeer {
    /// Starts a peer; with `login`, commands other than the handshake and SASL need a
    /// SCRAM-SHA-1 login as that user with that password.
    pub fn start(login: Option<(&str, &str)>) -> MongoPeer {
        Self::start_on(0, login)
    }

    /// As [`MongoPeer::start`], on `port` (0: a free one).
    pub fn start_on(port: u16, login: Option<(&str, &str)>) -> MongoPeer {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let credentials = login.map(|(user, password)| {
            let digest = format!("{:x}", md5::Md5::digest(format!("{user}:mongo:{password}")));
            let salt = b"skywasm-test-salt".to_vec();
            Arc::new(Credentials {
                user: user.to_owned(),
                salted: pbkdf2_sha1(digest.as_bytes(), &salt, ITERATIONS),
                salt,
            })
        });
        let store = Arc::new(Mutex::new(Store {
            next_cursor: 1000,
            ..Store::default()
        }));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let seen = rejected.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (store, credentials, seen) = (store.clone(), credentials.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &store, credentials.as_deref(), &seen));
            }
        });
        MongoPeer { port, rejected }
    }
}

fn serve(
    mut stream: TcpStream,
    store: &Mutex<Store>,
    credentials: Option<&Credentials>,
    seen: &Mutex<Vec<String>>,
) {
    let _ = stream.set_nodelay(true);
    let mut conversation = Conversation {
        authenticated: credentials.is_none(),
        ..Conversation::default()
    };
    loop {
        let mut word = [0u8; 4];
        if stream.read_exact(&mut word).is_err() {
            return;
        }
        let len = i32::from_le_bytes(word);
        if !(21..=48_000_000).contains(&len) {
            seen.lock()
                .unwrap()
                .push(format!("a message length of {len}"));
            return;
        }
        let mut body = vec![0u8; len as usize - 4];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let word = |i: usize| i32::from_le_bytes(body[i * 4..i * 4 + 4].try_into().unwrap());
        let (request_id, opcode, flags) = (word(0), word(2), word(3));
        let section = &body[17..];
        let well_formed = opcode == OP_MSG
            && body[16] == 0
            && section.len() >= 4
            && i32::from_le_bytes(section[..4].try_into().unwrap()) as usize == section.len();
        let command = well_formed
            .then(|| Document::from_reader(section))
            .and_then(Result::ok);
        let Some(command) = command else {
            seen.lock()
                .unwrap()
                .push(format!("an unreadable request: {body:?}"));
            return;
        };
        let name = command.keys().next().cloned().unwrap_or_default();
        if name == "skywasmHangUp" {
            return;
        }
        if name == "skywasmGarbage" {
            // an OP_REPLY (opcode 1), which the driver does not speak
            let mut garbage = 36i32.to_le_bytes().to_vec();
            garbage.extend_from_slice(&[0x5a; 4]);
            garbage.extend_from_slice(&request_id.to_le_bytes());
            garbage.extend_from_slice(&1i32.to_le_bytes());
            garbage.extend_from_slice(&[0; 20]);
            let _ = stream.write_all(&garbage);
            continue;
        }
        if name == "skywasmBadBson" {
            // an OP_MSG whose document's lengths add up but whose string's does not
            let doc = [
                &17i32.to_le_bytes()[..],
                &[2, b's', 0],
                &(-7i32).to_le_bytes(),
                b"abcd",
                &[0, 0],
            ]
            .concat();
            let _ = stream.write_all(&reply_message(request_id, &doc));
            continue;
        }
        if command.get_str("$db").is_err() {
            seen.lock()
                .unwrap()
                .push(format!("a command without $db: {command}"));
        }
        let reply = run(&command, &name, store, credentials, &mut conversation);
        if flags & MORE_TO_COME != 0 {
            continue;
        }
        if stream
            .write_all(&reply_message(request_id, &reply.to_vec().unwrap()))
            .is_err()
        {
            return;
        }
    }
}

/// An OP_MSG reply to `request_id` carrying `doc`.
fn reply_message(request_id: i32, doc: &[u8]) -> Vec<u8> {
    let mut message = ((21 + doc.len()) as i32).to_le_bytes().to_vec();
    message.extend_from_slice(&0x1234_5678i32.to_le_bytes());
    message.extend_from_slice(&request_id.to_le_bytes());
    message.extend_from_slice(&OP_MSG.to_le_bytes());
    message.extend_from_slice(&0i32.to_le_bytes());
    message.push(0);
    message.extend_from_slice(doc);
    message
}

fn failure(code: i32, errmsg: impl Into<String>) -> Document {
    doc! { "ok": 0.0, "errmsg": errmsg.into(), "code": code }
}

fn run(
    command: &Document,
    name: &str,
    store: &Mutex<Store>,
    credentials: Option<&Credentials>,
    conversation: &mut Conversation,
) -> Document {
    match name {
        "isMaster" | "ismaster" | "hello" => {
            return doc! { "ismaster": true, "maxWireVersion": 21, "minWireVersion": 0, "ok": 1.0 }
        }
        "saslStart" | "saslContinue" => return sasl(command, name, credentials, conversation),
        "logout" => {
            conversation.authenticated = credentials.is_none();
            return doc! { "ok": 1.0 };
        }
        _ => {}
    }
    if !conversation.authenticated {
        return failure(13, format!("command {name} requires authentication"));
    }
    let db = command.get_str("$db").unwrap_or("test");
    let coll = command.get_str(name).unwrap_or_default();
    let ns = format!("{db}.{coll}");
    let mut store = store.lock().unwrap();
    expire(&mut store);
    if let Some(lsid) = command.get("lsid") {
        if let Some(refused) = transaction(&mut store, command, name, lsid) {
            return refused;
        }
        if matches!(name, "commitTransaction" | "abortTransaction") {
            return doc! { "ok": 1.0 };
        }
    }
    match name {
        "startSession" => {
            let id = bson::Binary {
                subtype: bson::spec::BinarySubtype::Uuid,
                bytes: vec![0x5a; 16],
            };
            return doc! { "id": { "id": id }, "timeoutMinutes": 30, "ok": 1.0 };
        }
        "endSessions" => return doc! { "ok": 1.0 },
        _ => {}
    }
    match name {
        "insert" => insert(&mut store, &ns, command),
        "update" => update(&mut store, &ns, command),
        "delete" => delete(&mut store, &ns, command),
        "find" => find(&mut store, &ns, command),
        "getMore" => get_more(&mut store, command),
        "killCursors" => {
            let ids: Vec<Bson> = command.get_array("cursors").cloned().unwrap_or_default();
            for id in &ids {
                store.cursors.remove(&id.as_i64().unwrap_or(0));
            }
            doc! { "cursorsKilled": ids, "ok": 1.0 }
        }
        "count" => {
            let query = command.get_document("query").cloned().unwrap_or_default();
            let skip = number(command.get("skip")).unwrap_or(0.0) as usize;
            let limit = number(command.get("limit")).unwrap_or(0.0) as usize;
            let docs = store
                .collections
                .get(&ns)
                .map(|c| c.docs.as_slice())
                .unwrap_or_default();
            let mut n = docs
                .iter()
                .filter(|d| matches(d, &query))
                .count()
                .saturating_sub(skip);
            if limit > 0 {
                n = n.min(limit);
            }
            doc! { "n": n as i32, "ok": 1.0 }
        }
        "aggregate" => aggregate(&mut store, &ns, command),
        "findAndModify" => find_and_modify(&mut store, &ns, command),
        "createIndexes" => create_indexes(&mut store, &ns, command),
        "dropIndexes" => {
            let Some(c) = store.collections.get_mut(&ns) else {
                return failure(26, format!("ns not found {ns}"));
            };
            match command.get_str("index") {
                Ok("*") => c.indexes.clear(),
                Ok(index) => {
                    let before = c.indexes.len();
                    c.indexes.retain(|i| i.name != index);
                    if c.indexes.len() == before {
                        return failure(27, format!("index not found with name [{index}]"));
                    }
                }
                Err(_) => return failure(14, "index must be a string"),
            }
            doc! { "ok": 1.0 }
        }
        "drop" => {
            store.collections.remove(&ns);
            doc! { "ok": 1.0 }
        }
        other => failure(59, format!("no such command: '{other}'")),
    }
}

/// Checks a command in a transaction as mongod does (a long txnNumber, autocommit false,
/// no write concern inside, startTransaction first) and keeps the transaction's state:
/// the store as it was at its start, put back by abortTransaction. `Some` refuses it.
fn transaction(store: &mut Store, command: &Document, name: &str, lsid: &Bson) -> Option<Document> {
    let key = match lsid {
        Bson::Document(d) => d.to_vec().unwrap(),
        _ => return Some(failure(14, "lsid must be a document")),
    };
    let Ok(number) = command.get_i64("txnNumber") else {
        return Some(failure(
            14,
            "BSON field 'OperationSessionInfo.txnNumber' is the wrong type, expected type 'long'",
        ));
    };
    if command.get_bool("autocommit").ok() != Some(false) {
        return Some(failure(
            50768,
            "txnNumber may only be provided with autocommit: false",
        ));
    }
    let ending = matches!(name, "commitTransaction" | "abortTransaction");
    if command.contains_key("writeConcern") && !ending {
        return Some(failure(
            72,
            "Cannot set write concern after starting a transaction.",
        ));
    }
    if command.get_bool("startTransaction").ok() == Some(true) {
        store
            .transactions
            .insert(key, (number, store.collections.clone()));
        return None;
    }
    if store.transactions.get(&key).map(|t| t.0) != Some(number) {
        return Some(failure(
            251,
            "Given transaction number does not match any in-progress transactions.",
        ));
    }
    if ending {
        let (_, before) = store.transactions.remove(&key).unwrap();
        if name == "abortTransaction" {
            store.collections = before;
        }
    }
    None
}

fn sasl(
    command: &Document,
    name: &str,
    credentials: Option<&Credentials>,
    c: &mut Conversation,
) -> Document {
    let Some(cred) = credentials else {
        return failure(18, "Authentication failed.");
    };
    let payload = command.get_str("payload").unwrap_or_default();
    let Ok(text) = b64()
        .decode(payload)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
    else {
        return failure(18, "Authentication failed.");
    };
    if name == "saslStart" {
        if command.get_str("mechanism").ok() != Some("SCRAM-SHA-1") {
            return failure(2, "Unsupported mechanism");
        }
        let Some(first_bare) = text.strip_prefix("n,,") else {
            return failure(18, "Authentication failed.");
        };
        let field = |k: &str| {
            first_bare
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or_default()
                .to_owned()
        };
        if field("n=") != cred.user {
            return failure(11, "UserNotFound: Could not find user");
        }
        let server_first = format!(
            "r={}skywasmpeernonce,s={},i={ITERATIONS}",
            field("r="),
            b64().encode(&cred.salt)
        );
        c.scram = Some((first_bare.to_owned(), server_first.clone()));
        c.proved = false;
        return doc! { "conversationId": 1, "done": false, "payload": b64().encode(server_first), "ok": 1.0 };
    }
    let Some((first_bare, server_first)) = c.scram.clone() else {
        return failure(17, "No SASL session state found");
    };
    if c.proved {
        // the client's last, empty message
        c.authenticated = true;
        c.scram = None;
        return doc! { "conversationId": 1, "done": true, "payload": "", "ok": 1.0 };
    }
    let (without_proof, proof) = match text.rsplit_once(",p=") {
        Some(parts) => parts,
        None => return failure(18, "Authentication failed."),
    };
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let client_key = hmac(&cred.salted, b"Client Key");
    let stored_key = Sha1::digest(&client_key).to_vec();
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof = b64().decode(proof).unwrap_or_default();
    let claimed: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    if proof.len() != signature.len() || Sha1::digest(&claimed).to_vec() != stored_key {
        return failure(18, "Authentication failed.");
    }
    c.proved = true;
    let server_signature = hmac(&hmac(&cred.salted, b"Server Key"), auth_message.as_bytes());
    let last = format!("v={}", b64().encode(server_signature));
    doc! { "conversationId": 1, "done": false, "payload": b64().encode(last), "ok": 1.0 }
}

// ---------------------------------------------------------------------------------------
// the store

fn number(v: Option<&Bson>) -> Option<f64> {
    match v? {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// MongoDB's order for the values the tests compare: numbers by value, strings by bytes.
fn compare(a: &Bson, b: &Bson) -> Option<std::cmp::Ordering> {
    match (number(Some(a)), number(Some(b))) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Bson::String(x), Bson::String(y)) => Some(x.cmp(y)),
            (Bson::DateTime(x), Bson::DateTime(y)) => Some(x.cmp(y)),
            _ => (a == b).then_some(std::cmp::Ordering::Equal),
        },
    }
}

fn equal(a: Option<&Bson>, b: &Bson) -> bool {
    match a {
        Some(a) => compare(a, b) == Some(std::cmp::Ordering::Equal),
        None => matches!(b, Bson::Null),
    }
}

fn matches(doc: &Document, filter: &Document) -> bool {
    filter.iter().all(|(field, condition)| {
        let value = doc.get(field);
        match condition {
            Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                ops.iter().all(|(op, operand)| {
                    let order = value.and_then(|v| compare(v, operand));
                    match op.as_str() {
                        "$eq" => equal(value, operand),
                        "$ne" => !equal(value, operand),
                        "$gt" => order == Some(std::cmp::Ordering::Greater),
                        "$gte" => order.is_some_and(|o| o.is_ge()),
                        "$lt" => order == Some(std::cmp::Ordering::Less),
                        "$lte" => order.is_some_and(|o| o.is_le()),
                        "$in" => operand
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| equal(value, x))),
                        "$exists" => value.is_some() == operand.as_bool().unwrap_or(true),
                        _ => false,
                    }
                })
            }
            _ => equal(value, condition),
        }
    })
}

fn sort_docs(docs: &mut [Document], sort: &Document) {
    docs.sort_by(|a, b| {
        for (field, direction) in sort {
            let (x, y) = (
                a.get(field).unwrap_or(&Bson::Null),
                b.get(field).unwrap_or(&Bson::Null),
            );
            let order = compare(x, y).unwrap_or(std::cmp::Ordering::Equal);
            let order = if number(Some(direction)).unwrap_or(1.0) < 0.0 {
                order.reverse()
            } else {
                order
            };
            if order.is_ne() {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    });
}

fn project(doc: &Document, projection: &Document) -> Document {
    if projection.is_empty() {
        return doc.clone();
    }
    let including = projection
        .iter()
        .any(|(k, v)| k != "_id" && number(Some(v)).unwrap_or(0.0) != 0.0);
    let mut out = Document::new();
    for (k, v) in doc {
        let said = projection
            .get(k)
            .and_then(|s| number(Some(s)).or(s.as_bool().map(f64::from)));
        let keep = match said {
            Some(n) => n != 0.0,
            None => !including || k == "_id",
        };
        if keep {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Removes the documents a TTL index says have expired (mongod's monitor runs every
/// minute; here, at every command).
fn expire(store: &mut Store) {
    let now = DateTime::now().timestamp_millis();
    for c in store.collections.values_mut() {
        for index in &c.indexes {
            let (Some(after), Some(field)) = (index.expire_after, index.key.keys().next()) else {
                continue;
            };
            c.docs.retain(|d| match d.get(field) {
                Some(Bson::DateTime(t)) => t.timestamp_millis() + after * 1000 > now,
                _ => true,
            });
        }
    }
}

/// The unique index `doc` would break in `c` (other than the document at `except`).
fn duplicate(c: &Collection, doc: &Document, except: Option<usize>) -> Option<String> {
    c.indexes.iter().filter(|i| i.unique).find_map(|index| {
        let key: Document = index
            .key
            .keys()
            .map(|k| (k.clone(), doc.get(k).cloned().unwrap_or(Bson::Null)))
            .collect();
        let clash = c.docs.iter().enumerate().any(|(at, other)| {
            Some(at) != except && key.iter().all(|(k, v)| equal(other.get(k), v))
        });
        clash.then(|| {
            format!(
                "E11000 duplicate key error collection: index: {} dup key: {key}",
                index.name
            )
        })
    })
}

fn insert(store: &mut Store, ns: &str, command: &Document) -> Document {
    let c = store.collections.entry(ns.to_owned()).or_default();
    let mut n = 0;
    let mut errors = Vec::new();
    for (i, d) in command
        .get_array("documents")
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let Bson::Document(mut d) = d else { continue };
        if !d.contains_key("_id") {
            d.insert("_id", bson::oid::ObjectId::new());
        }
        if let Some(errmsg) = duplicate(c, &d, None) {
            errors.push(Bson::Document(
                doc! { "index": i as i32, "code": 11000, "errmsg": errmsg },
            ));
            continue;
        }
        c.docs.push(d);
        n += 1;
    }
    let mut reply = doc! { "n": n, "ok": 1.0 };
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    reply
}

/// Applies an update document: operators ($set, $inc, $unset) or a whole replacement.
fn apply(doc: &mut Document, update: &Document) {
    if update.keys().next().is_some_and(|k| k.starts_with('$')) {
        for (op, fields) in update {
            let Bson::Document(fields) = fields else {
                continue;
            };
            for (k, v) in fields {
                match op.as_str() {
                    "$set" => {
                        doc.insert(k.clone(), v.clone());
                    }
                    "$unset" => {
                        doc.remove(k);
                    }
                    "$inc" => {
                        let sum = match (doc.get(k), v) {
                            (Some(Bson::Int32(a)), Bson::Int32(b)) => Bson::Int32(a + b),
                            (Some(Bson::Int64(a)), b) => {
                                Bson::Int64(a + number(Some(b)).unwrap_or(0.0) as i64)
                            }
                            (Some(a), b) => Bson::Double(
                                number(Some(a)).unwrap_or(0.0) + number(Some(b)).unwrap_or(0.0),
                            ),
                            (None, b) => b.clone(),
                        };
                        doc.insert(k.clone(), sum);
                    }
                    _ => {}
                }
            }
        }
    } else {
        let id = doc.get("_id").cloned();
        *doc = update.clone();
        if let Some(id) = id {
            doc.insert("_id", id);
        }
    }
}

/// An upserted document: the query's plain fields, then the update.
fn upserted(query: &Document, update: &Document) -> Document {
    let mut d: Document = query
        .iter()
        .filter(|(_, v)| !matches!(v, Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$'))))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    apply(&mut d, update);
    if !d.contains_key("_id") {
        d.insert("_id", bson::oid::ObjectId::new());
    }
    d
}

fn update(store: &mut Store, ns: &str, command: &Document) -> Document {
    let c = store.collections.entry(ns.to_owned()).or_default();
    let (mut n, mut modified) = (0, 0);
    let mut errors = Vec::new();
    for (i, statement) in command
        .get_array("updates")
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let Bson::Document(s) = statement else {
            continue;
        };
        let query = s.get_document("q").cloned().unwrap_or_default();
        let change = s.get_document("u").cloned().unwrap_or_default();
        let multi = s.get_bool("multi").unwrap_or(false);
        let hits: Vec<usize> = (0..c.docs.len())
            .filter(|&at| matches(&c.docs[at], &query))
            .collect();
        if hits.is_empty() && s.get_bool("upsert").unwrap_or(false) {
            c.docs.push(upserted(&query, &change));
            n += 1;
            continue;
        }
        for at in hits.into_iter().take(if multi { usize::MAX } else { 1 }) {
            let mut changed = c.docs[at].clone();
            apply(&mut changed, &change);
            if let Some(errmsg) = duplicate(c, &changed, Some(at)) {
                errors.push(Bson::Document(
                    doc! { "index": i as i32, "code": 11000, "errmsg": errmsg },
                ));
                continue;
            }
            n += 1;
            if changed != c.docs[at] {
                modified += 1;
            }
            c.docs[at] = changed;
        }
    }
    let mut reply = doc! { "n": n, "nModified": modified, "ok": 1.0 };
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    reply
}

fn delete(store: &mut Store, ns: &str, command: &Document) -> Document {
    let c = store.collections.entry(ns.to_owned()).or_default();
    let mut n = 0;
    for statement in command.get_array("deletes").cloned().unwrap_or_default() {
        let Bson::Document(s) = statement else {
            continue;
        };
        let query = s.get_document("q").cloned().unwrap_or_default();
        let mut limit = number(s.get("limit")).unwrap_or(0.0) as usize;
        if limit == 0 {
            limit = usize::MAX;
        }
        let mut removed = 0;
        c.docs.retain(|d| {
            let hit = removed < limit && matches(d, &query);
            removed += usize::from(hit);
            !hit
        });
        n += removed as i32;
    }
    doc! { "n": n, "ok": 1.0 }
}

/// Opens a cursor over `docs`: the first batch, and the rest kept under a new id.
fn open_cursor(
    store: &mut Store,
    ns: &str,
    mut docs: VecDeque<Document>,
    batch: usize,
) -> Document {
    let first: Vec<Document> = docs.drain(..batch.min(docs.len())).collect();
    let id = if docs.is_empty() {
        0
    } else {
        store.next_cursor += 1;
        store
            .cursors
            .insert(store.next_cursor, (ns.to_owned(), docs));
        store.next_cursor
    };
    doc! { "cursor": { "firstBatch": first, "id": id, "ns": ns }, "ok": 1.0 }
}

fn find(store: &mut Store, ns: &str, command: &Document) -> Document {
    let filter = command.get_document("filter").cloned().unwrap_or_default();
    let mut docs: Vec<Document> = store
        .collections
        .get(ns)
        .map(|c| {
            c.docs
                .iter()
                .filter(|d| matches(d, &filter))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    sort_docs(
        &mut docs,
        &command.get_document("sort").cloned().unwrap_or_default(),
    );
    let skip = number(command.get("skip")).unwrap_or(0.0) as usize;
    let limit = number(command.get("limit")).unwrap_or(0.0) as usize;
    let projection = command
        .get_document("projection")
        .cloned()
        .unwrap_or_default();
    let docs: VecDeque<Document> = docs
        .iter()
        .skip(skip)
        .take(if limit > 0 { limit } else { usize::MAX })
        .map(|d| project(d, &projection))
        .collect();
    let batch = number(command.get("batchSize")).map_or(DEFAULT_BATCH, |b| b as usize);
    open_cursor(store, ns, docs, batch)
}

fn get_more(store: &mut Store, command: &Document) -> Document {
    let id = command.get_i64("getMore").unwrap_or(0);
    let batch = number(command.get("batchSize")).map_or(usize::MAX, |b| b as usize);
    let Some((ns, mut docs)) = store.cursors.remove(&id) else {
        return failure(43, format!("cursor id {id} not found"));
    };
    let next: Vec<Document> = docs.drain(..batch.min(docs.len())).collect();
    let id = if docs.is_empty() {
        0
    } else {
        store.cursors.insert(id, (ns.clone(), docs));
        id
    };
    doc! { "cursor": { "nextBatch": next, "id": id, "ns": ns }, "ok": 1.0 }
}

fn aggregate(store: &mut Store, ns: &str, command: &Document) -> Document {
    let mut docs: Vec<Document> = store
        .collections
        .get(ns)
        .map(|c| c.docs.clone())
        .unwrap_or_default();
    for stage in command.get_array("pipeline").cloned().unwrap_or_default() {
        let Bson::Document(stage) = stage else {
            return failure(14, "a pipeline stage must be a document");
        };
        let Some((op, arg)) = stage.iter().next() else {
            continue;
        };
        match (op.as_str(), arg) {
            ("$match", Bson::Document(filter)) => docs.retain(|d| matches(d, filter)),
            ("$sort", Bson::Document(sort)) => sort_docs(&mut docs, sort),
            ("$skip", n) => {
                docs.drain(..(number(Some(n)).unwrap_or(0.0) as usize).min(docs.len()));
            }
            ("$limit", n) => docs.truncate(number(Some(n)).unwrap_or(0.0) as usize),
            ("$count", Bson::String(field)) => {
                let n = docs.len() as i32;
                docs = if n > 0 {
                    vec![doc! { field.clone(): n }]
                } else {
                    Vec::new()
                };
            }
            ("$group", Bson::Document(spec)) => docs = group(&docs, spec),
            (other, _) => {
                return failure(
                    40324,
                    format!("Unrecognized pipeline stage name: '{other}'"),
                )
            }
        }
    }
    let batch = command
        .get_document("cursor")
        .ok()
        .and_then(|c| number(c.get("batchSize")))
        .map_or(DEFAULT_BATCH, |b| b as usize);
    open_cursor(store, ns, docs.into(), batch)
}

/// `$group` with an `_id` of null or "$field" and `$sum` accumulators.
fn group(docs: &[Document], spec: &Document) -> Vec<Document> {
    let value_of = |d: &Document, expr: &Bson| match expr {
        Bson::String(path) if path.starts_with('$') => {
            d.get(&path[1..]).cloned().unwrap_or(Bson::Null)
        }
        other => other.clone(),
    };
    let mut groups: Vec<(Bson, Document)> = Vec::new();
    for d in docs {
        let id = value_of(d, spec.get("_id").unwrap_or(&Bson::Null));
        let at = match groups.iter().position(|(g, _)| *g == id) {
            Some(at) => at,
            None => {
                groups.push((id.clone(), doc! { "_id": id }));
                groups.len() - 1
            }
        };
        for (field, acc) in spec.iter().filter(|(k, _)| *k != "_id") {
            let Some(Bson::Document(acc)) = Some(acc) else {
                continue;
            };
            if let Some(expr) = acc.get("$sum") {
                let add = number(Some(&value_of(d, expr))).unwrap_or(0.0);
                let total = number(groups[at].1.get(field)).unwrap_or(0.0) + add;
                let total = if total.fract() == 0.0 {
                    Bson::Int32(total as i32)
                } else {
                    Bson::Double(total)
                };
                groups[at].1.insert(field.clone(), total);
            }
        }
    }
    groups.into_iter().map(|(_, d)| d).collect()
}

fn find_and_modify(store: &mut Store, ns: &str, command: &Document) -> Document {
    let c = store.collections.entry(ns.to_owned()).or_default();
    let query = command.get_document("query").cloned().unwrap_or_default();
    let mut order: Vec<usize> = (0..c.docs.len())
        .filter(|&at| matches(&c.docs[at], &query))
        .collect();
    if let Ok(sort) = command.get_document("sort") {
        let mut picked: Vec<Document> = order.iter().map(|&at| c.docs[at].clone()).collect();
        sort_docs(&mut picked, sort);
        order = picked
            .iter()
            .filter_map(|p| c.docs.iter().position(|d| d == p))
            .collect();
    }
    let want_new = command.get_bool("new").unwrap_or(false);
    let fields = command.get_document("fields").cloned().unwrap_or_default();
    let Some(&at) = order.first() else {
        if let (Ok(change), true) = (
            command.get_document("update"),
            command.get_bool("upsert").unwrap_or(false),
        ) {
            let d = upserted(&query, change);
            c.docs.push(d.clone());
            let value = if want_new {
                Bson::Document(project(&d, &fields))
            } else {
                Bson::Null
            };
            return doc! { "lastErrorObject": { "n": 1, "updatedExisting": false }, "value": value, "ok": 1.0 };
        }
        return doc! { "lastErrorObject": { "n": 0, "updatedExisting": false }, "value": Bson::Null, "ok": 1.0 };
    };
    let old = c.docs[at].clone();
    if command.get_bool("remove").unwrap_or(false) {
        c.docs.remove(at);
        return doc! { "lastErrorObject": { "n": 1 }, "value": project(&old, &fields), "ok": 1.0 };
    }
    let mut changed = old.clone();
    apply(
        &mut changed,
        &command.get_document("update").cloned().unwrap_or_default(),
    );
    if let Some(errmsg) = duplicate(c, &changed, Some(at)) {
        return failure(11000, errmsg);
    }
    c.docs[at] = changed.clone();
    let value = project(if want_new { &changed } else { &old }, &fields);
    doc! { "lastErrorObject": { "n": 1, "updatedExisting": true }, "value": value, "ok": 1.0 }
}

fn create_indexes(store: &mut Store, ns: &str, command: &Document) -> Document {
    let c = store.collections.entry(ns.to_owned()).or_default();
    let before = c.indexes.len() as i32 + 1; // _id's
    for spec in command.get_array("indexes").cloned().unwrap_or_default() {
        let Bson::Document(spec) = spec else {
            return failure(14, "an index must be a document");
        };
        let (Ok(key), Ok(name)) = (spec.get_document("key"), spec.get_str("name")) else {
            return failure(67, "index specification must have key and name");
        };
        if c.indexes.iter().any(|i| i.name == name) {
            continue;
        }
        let index = Index {
            name: name.to_owned(),
            key: key.clone(),
            unique: spec.get_bool("unique").unwrap_or(false),
            expire_after: number(spec.get("expireAfterSeconds")).map(|s| s as i64),
        };
        if index.unique {
            let probe = Collection {
                docs: Vec::new(),
                indexes: vec![Index {
                    key: key.clone(),
                    unique: true,
                    ..Index::default()
                }],
            };
            let mut seen = probe;
            for d in &c.docs {
                if let Some(errmsg) = duplicate(&seen, d, None) {
                    return failure(11000, errmsg);
                }
                seen.docs.push(d.clone());
            }
        }
        c.indexes.push(index);
    }
    doc! { "numIndexesBefore": before, "numIndexesAfter": c.indexes.len() as i32 + 1, "ok": 1.0 }
}
