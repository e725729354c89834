//! Shared read-only tables (skynet.sharetable): a Lua table copied once into the host, which
//! every service reads a key at a time. skynet shares the table's memory between Lua VMs;
//! instances share no memory here, so the host keeps the one copy and a reader's proxy
//! asks it for what the reader touches: a reader holds O(what it read), not a copy.
//!
//! A table is a tree of nodes (node 0 is the root); a value is a scalar or another node.
//! A version lives while a service holds it ([`crate::held`]): the service that made it
//! (until it lets go) and every reader, handed a copy that travels in a message and taken
//! with `adopt`. A service that ends lets go of all it held.

use std::collections::HashMap;
use std::sync::Arc;

use skywasm_abi::{Handle, HostError};
use skywasm_pack::{Table, Value};

use crate::held::HeldStore;

/// A key of a node's hash part, hashable (floats by their bits; integral floats are
/// stored as integers, as Lua normalises them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Bool(bool),
    Int(i64),
    Real(u64),
    Str(Box<[u8]>),
}

impl Key {
    fn from_value(value: &Value) -> Option<Key> {
        Some(match value {
            Value::Boolean(b) => Key::Bool(*b),
            Value::Integer(i) => Key::Int(*i),
            Value::Real(r) if r.fract() == 0.0 && r.abs() < 9.2e18 => Key::Int(*r as i64),
            Value::Real(r) if !r.is_nan() => Key::Real(r.to_bits()),
            Value::String(s) => Key::Str(s.clone().into_boxed_slice()),
            _ => return None,
        })
    }

    fn to_value(&self) -> Value {
        match self {
            Key::Bool(b) => Value::Boolean(*b),
            Key::Int(i) => Value::Integer(*i),
            Key::Real(bits) => Value::Real(f64::from_bits(*bits)),
            Key::Str(s) => Value::String(s.to_vec()),
        }
    }
}

/// A table with at most this many fields comes with its scalar fields when a reader first
/// gets it ([`Tree::get`]).
const INLINE_FIELDS: usize = 16;

/// A value in a node: a scalar, or another node of the same tree.
#[derive(Clone, Debug, PartialEq)]
enum Leaf {
    Scalar(Value),
    Node(u32),
}

/// One Lua table of the tree.
#[derive(Default, Debug)]
struct Node {
    /// `t[1..=n]`.
    array: Vec<Leaf>,
    /// The other keys, in the order they came, and where each is.
    keys: Vec<(Key, Leaf)>,
    index: HashMap<Key, usize>,
}

/// One version of a shared table.
#[derive(Debug)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

/// Why a table cannot be shared.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unshareable {
    /// The bytes are not one `skynet.pack`ed table.
    NotATable,
    /// It holds a light userdata (a pointer into one service) or an unusable key.
    BadValue,
}

impl Tree {
    /// The tree of the table `skynet.pack` made `bytes` of.
    pub(crate) fn from_packed(bytes: &[u8]) -> Result<Tree, Unshareable> {
        let values = skywasm_pack::unpack(bytes).map_err(|_| Unshareable::NotATable)?;
        let [Value::Table(table)] = values.as_slice() else {
            return Err(Unshareable::NotATable);
        };
        let mut tree = Tree { nodes: Vec::new() };
        tree.add(table)?;
        Ok(tree)
    }

    /// Adds `table` and what it holds; its node's number.
    fn add(&mut self, table: &Table) -> Result<u32, Unshareable> {
        let at = self.nodes.len();
        self.nodes.push(Node::default());
        let mut node = Node::default();
        for value in &table.array {
            node.array.push(self.leaf(value)?);
        }
        for (key, value) in &table.hash {
            if value.is_nil() {
                continue;
            }
            let key = Key::from_value(key).ok_or(Unshareable::BadValue)?;
            let leaf = self.leaf(value)?;
            match node.index.get(&key) {
                Some(&i) => node.keys[i].1 = leaf,
                None => {
                    node.index.insert(key.clone(), node.keys.len());
                    node.keys.push((key, leaf));
                }
            }
        }
        self.nodes[at] = node;
        Ok(at as u32)
    }

    fn leaf(&mut self, value: &Value) -> Result<Leaf, Unshareable> {
        Ok(match value {
            Value::Table(table) => Leaf::Node(self.add(table)?),
            Value::LightUserdata(_) => return Err(Unshareable::BadValue),
            scalar => Leaf::Scalar(scalar.clone()),
        })
    }

    fn node(&self, node: u32) -> Result<&Node, HostError> {
        self.nodes
            .get(node as usize)
            .ok_or(HostError::InvalidArgument)
    }

    /// Appends a leaf as the reader gets it: a scalar as itself, a table as its node's
    /// number followed by `true` and, for a small table, its scalar fields as key/value
    /// pairs, so that a reader's first look into a small record takes one host call.
    fn push_value(&self, out: &mut Vec<Value>, leaf: &Leaf) {
        match leaf {
            Leaf::Scalar(value) => out.push(value.clone()),
            Leaf::Node(node) => {
                out.push(Value::Integer(i64::from(*node)));
                out.push(Value::Boolean(true));
                let Some(n) = self.nodes.get(*node as usize) else {
                    return;
                };
                if n.array.len() + n.keys.len() > INLINE_FIELDS {
                    return;
                }
                let array = n
                    .array
                    .iter()
                    .enumerate()
                    .map(|(i, leaf)| (Value::Integer(i as i64 + 1), leaf));
                let keys = n.keys.iter().map(|(k, leaf)| (k.to_value(), leaf));
                for (key, leaf) in array.chain(keys) {
                    if let Leaf::Scalar(value) = leaf {
                        out.push(key);
                        out.push(value.clone());
                    }
                }
            }
        }
    }

    /// `t[key]` of `node`, packed: the value, or for a table its node, `true`, and for a
    /// small one its scalar fields.
    pub(crate) fn get(&self, node: u32, key: &[u8]) -> Result<Vec<u8>, HostError> {
        let node = self.node(node)?;
        let key = one_value(key)?;
        let leaf = match &key {
            Value::Integer(i) if *i >= 1 && (*i as u64) <= node.array.len() as u64 => {
                Some(&node.array[*i as usize - 1])
            }
            _ => Key::from_value(&key)
                .and_then(|k| node.index.get(&k))
                .map(|&i| &node.keys[i].1),
        };
        let mut out = Vec::with_capacity(2);
        match leaf {
            Some(leaf) => self.push_value(&mut out, leaf),
            None => out.push(Value::Nil),
        }
        skywasm_pack::pack(&out).map_err(|_| HostError::Failed)
    }

    /// The key after `key` (none: the first) of `node` and its value (as [`Tree::get`]
    /// answers it), packed; empty at the end. The array part comes first, then the other keys in the order they came.
    pub(crate) fn next(&self, node: u32, key: &[u8]) -> Result<Vec<u8>, HostError> {
        let node = self.node(node)?;
        let position = if key.is_empty() {
            0
        } else {
            match one_value(key)? {
                Value::Integer(i) if i >= 1 && (i as u64) <= node.array.len() as u64 => i as usize,
                other => {
                    let key = Key::from_value(&other).ok_or(HostError::InvalidArgument)?;
                    node.array.len() + node.index.get(&key).ok_or(HostError::InvalidArgument)? + 1
                }
            }
        };
        let mut pair = Vec::with_capacity(3);
        if position < node.array.len() {
            pair.push(Value::Integer(position as i64 + 1));
            self.push_value(&mut pair, &node.array[position]);
        } else if let Some((key, leaf)) = node.keys.get(position - node.array.len()) {
            pair.push(key.to_value());
            self.push_value(&mut pair, leaf);
        } else {
            return Ok(Vec::new());
        }
        skywasm_pack::pack(&pair).map_err(|_| HostError::Failed)
    }

    /// `#t` of `node` (its array part).
    pub(crate) fn len(&self, node: u32) -> Result<usize, HostError> {
        Ok(self.node(node)?.array.len())
    }
}

/// The one value packed in `bytes`, a float with an integral value as the integer (Lua
/// normalises `t[1.0]` to `t[1]`).
fn one_value(bytes: &[u8]) -> Result<Value, HostError> {
    let mut values = skywasm_pack::unpack(bytes).map_err(|_| HostError::InvalidArgument)?;
    if values.len() != 1 {
        return Err(HostError::InvalidArgument);
    }
    Ok(match values.remove(0) {
        Value::Real(r) if r.fract() == 0.0 && r.abs() < 9.2e18 => Value::Integer(r as i64),
        other => other,
    })
}

/// The shared tables of one node: versions held as [`HeldStore`] keeps values.
#[derive(Default)]
pub(crate) struct ShareStore {
    versions: HeldStore<Arc<Tree>>,
}

impl ShareStore {
    /// A new version, held by `maker`; its id.
    pub(crate) fn create(&self, maker: Handle, tree: Tree) -> u32 {
        self.versions.create(maker, Arc::new(tree))
    }

    /// The version `id`, to read.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown version.
    pub(crate) fn tree(&self, id: u32) -> Result<Arc<Tree>, HostError> {
        self.versions.with(id, Handle::NONE, |tree, _| tree.clone())
    }

    /// A copy for a reader, in transit until it adopts it.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown version.
    pub(crate) fn copy(&self, id: u32) -> Result<(), HostError> {
        self.versions.copy(id)
    }

    /// `reader` takes a copy.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown version or one with no copy in transit.
    pub(crate) fn adopt(&self, reader: Handle, id: u32) -> Result<(), HostError> {
        self.versions.adopt(reader, id)
    }

    /// `owner` lets go of its hold (as the maker, or one reader's).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown version or a hold `owner` does not have.
    pub(crate) fn release(&self, owner: Handle, id: u32) -> Result<(), HostError> {
        let as_maker = self.versions.is_maker(owner, id);
        self.versions.release(owner, id, as_maker, |_| {})
    }

    /// A service ended: every hold it had goes.
    pub(crate) fn service_ended(&self, owner: Handle) {
        self.versions.service_ended(owner, |_| {});
    }

    /// How many versions live (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.versions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed_table() -> Vec<u8> {
        let mut inner = Table::new();
        inner.push("a");
        inner.push("b");
        let mut t = Table::new();
        t.push(10);
        t.push(Value::Table(inner));
        t.insert("name", "sword");
        t.insert(2.5, true);
        t.insert(3.0, "three as an integer key");
        skywasm_pack::pack(&[Value::Table(t)]).unwrap()
    }

    fn get(tree: &Tree, node: u32, key: Value) -> Vec<Value> {
        let key = skywasm_pack::pack(&[key]).unwrap();
        skywasm_pack::unpack(&tree.get(node, &key).unwrap()).unwrap()
    }

    #[test]
    fn a_tree_answers_keys_lengths_and_iteration_like_the_table() {
        let tree = Tree::from_packed(&packed_table()).unwrap();
        assert_eq!(get(&tree, 0, Value::Integer(1)), [Value::Integer(10)]);
        let table = get(&tree, 0, Value::Integer(2));
        let [Value::Integer(inner), Value::Boolean(true), fields @ ..] = table.as_slice() else {
            panic!("a table is its node and true: {table:?}");
        };
        assert_eq!(
            fields,
            [
                Value::Integer(1),
                Value::from("a"),
                Value::Integer(2),
                Value::from("b")
            ],
            "a small table comes with its scalar fields"
        );
        let inner = *inner as u32;
        assert_eq!(get(&tree, inner, Value::Integer(2)), [Value::from("b")]);
        assert_eq!(get(&tree, 0, Value::from("name")), [Value::from("sword")]);
        assert_eq!(get(&tree, 0, Value::Real(2.5)), [Value::Boolean(true)]);
        assert_eq!(
            get(&tree, 0, Value::Integer(3)),
            [Value::from("three as an integer key")]
        );
        assert_eq!(get(&tree, 0, Value::from("missing")), [Value::Nil]);
        assert_eq!(
            get(&tree, 0, Value::Real(1.0)),
            [Value::Integer(10)],
            "t[1.0] is t[1]"
        );
        assert_eq!(tree.len(0).unwrap(), 2);
        assert_eq!(tree.len(inner).unwrap(), 2);
        // iteration visits every pair once
        let mut key = Vec::new();
        let mut seen = Vec::new();
        loop {
            let pair = tree.next(0, &key).unwrap();
            if pair.is_empty() {
                break;
            }
            let values = skywasm_pack::unpack(&pair).unwrap();
            key = skywasm_pack::pack(&values[..1]).unwrap();
            seen.push(values[0].clone());
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(tree.get(99, &key), Err(HostError::InvalidArgument));
        assert_eq!(tree.get(0, b"\xff"), Err(HostError::InvalidArgument));
    }

    #[test]
    fn what_cannot_be_shared_is_refused() {
        let not_table = skywasm_pack::pack(&[Value::Integer(1)]).unwrap();
        assert_eq!(
            Tree::from_packed(&not_table).unwrap_err(),
            Unshareable::NotATable
        );
        let mut t = Table::new();
        t.push(Value::LightUserdata(0x1000));
        let pointer = skywasm_pack::pack(&[Value::Table(t)]).unwrap();
        assert_eq!(
            Tree::from_packed(&pointer).unwrap_err(),
            Unshareable::BadValue
        );
        assert_eq!(
            Tree::from_packed(b"\x01\x02garbage").unwrap_err(),
            Unshareable::NotATable
        );
    }

    #[test]
    fn versions_live_while_held_and_go_with_the_services_holding_them() {
        let (maker, reader) = (Handle(1), Handle(2));
        let store = ShareStore::default();
        let id = store.create(maker, Tree::from_packed(&packed_table()).unwrap());
        store.copy(id).unwrap();
        store.adopt(reader, id).unwrap();
        assert_eq!(store.adopt(reader, id), Err(HostError::InvalidArgument));
        store.release(maker, id).unwrap();
        assert!(store.tree(id).is_ok(), "the reader still holds it");
        store.service_ended(reader);
        assert_eq!(store.len(), 0);
        assert!(store.tree(id).is_err());
    }
}
