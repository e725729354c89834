//! Service addresses and names (skynet's `skynet_handle.c`).
//!
//! A [`HandleTable`] maps 32-bit handles to services and names to handles. Allocation walks
//! forward from the last handle it gave out and doubles the slot array when every slot is
//! taken, exactly as skynet does, so a retired handle is not handed to a new service until the
//! allocator has gone once around the 24-bit space (or, in a full table, around the slots).
//!
//! Invariants: handle 0 is never allocated; every stored entry sits at
//! `slots[local & (slots.len() - 1)]`; a name maps to at most one handle and is released when
//! its handle is retired. The table is generic over what it stores so it can be tested
//! without services.

use std::collections::HashMap;
use std::sync::RwLock;

use skywasm_abi::{Handle, GLOBAL_NAME_MAX};

use crate::sync::{read, write};

/// Longest accepted local name (including the leading dot). skynet has no limit; one bounds
/// what a guest can make the host store.
pub const LOCAL_NAME_MAX: usize = 255;

/// Initial slot count (skynet's `DEFAULT_SLOT_SIZE`).
const DEFAULT_SLOTS: usize = 4;

/// Why a handle or name operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// All 2^24 - 1 local handles are in use.
    #[error("no free service handle (all 16777215 are in use)")]
    Full,
    /// The name is already bound to another service.
    #[error("name {0} is already taken")]
    NameTaken(String),
    /// The name is empty, too long, or not a valid local (`.name`) or global name.
    #[error("invalid service name {0:?}")]
    InvalidName(String),
    /// The handle does not belong to a live service.
    #[error("no service at {0}")]
    NoSuchHandle(Handle),
    /// The service, or the services of its owner together, hold their cap of names.
    #[error("{0}")]
    TooManyNames(String),
}

/// Caps on the names bound to one service, and to all the services of one owner (a
/// tenant) together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameCaps {
    /// Names of one service.
    pub per_service: usize,
    /// Names of all the services of one owner.
    pub per_owner: usize,
}

impl NameCaps {
    /// No cap (skynet's).
    pub const NONE: NameCaps = NameCaps {
        per_service: usize::MAX,
        per_owner: usize::MAX,
    };
}

/// The names bound to one handle, and whose they count as.
#[derive(Debug, Default)]
struct Bound {
    owner: usize,
    names: Vec<(usize, String)>,
}

/// Handles and names of the services of one node.
pub struct HandleTable<T> {
    harbor: u8,
    inner: RwLock<Inner<T>>,
}

struct Inner<T> {
    /// Power-of-two slot array; a handle lives at `local & (len - 1)`.
    slots: Vec<Option<(Handle, T)>>,
    /// The local id the next allocation tries first.
    next_local: u32,
    live: usize,
    /// The shared name space (scope 0): every service's lookups see it.
    names: HashMap<String, Handle>,
    /// Private name spaces by scope (an untrusted tenant's names only it can see).
    private: HashMap<usize, HashMap<String, Handle>>,
    /// Names bound to each handle with their scope, so retiring a handle releases them
    /// without a scan.
    names_of: HashMap<Handle, Bound>,
    /// Names bound per owner, against [`NameCaps::per_owner`].
    names_per_owner: HashMap<usize, usize>,
}

/// The scope of the shared name space.
pub const SHARED_SCOPE: usize = 0;

/// Checks a name's syntax: `.local` names of 1..=254 bytes after the dot, or global names of
/// 1..=15 bytes (skynet's `GLOBALNAME_LENGTH`). Names never contain spaces (commands split on
/// them) and never start with `:` (that is an address).
pub fn validate_name(name: &str) -> Result<(), HandleError> {
    let invalid = || HandleError::InvalidName(name.to_string());
    if name.is_empty() || name.starts_with(':') || name.contains(|c: char| c.is_whitespace()) {
        return Err(invalid());
    }
    match name.strip_prefix('.') {
        Some(rest) if !rest.is_empty() && name.len() <= LOCAL_NAME_MAX => Ok(()),
        Some(_) => Err(invalid()),
        None if name.len() <= GLOBAL_NAME_MAX => Ok(()),
        None => Err(invalid()),
    }
}

impl<T: Clone> HandleTable<T> {
    /// An empty table whose handles carry `harbor` in their high 8 bits.
    pub fn new(harbor: u8) -> Self {
        HandleTable {
            harbor,
            inner: RwLock::new(Inner {
                slots: (0..DEFAULT_SLOTS).map(|_| None).collect(),
                next_local: 1,
                live: 0,
                names: HashMap::new(),
                private: HashMap::new(),
                names_of: HashMap::new(),
                names_per_owner: HashMap::new(),
            }),
        }
    }

    /// The harbor id of this node.
    pub fn harbor(&self) -> u8 {
        self.harbor
    }

    /// Allocates a handle and stores the value `make` builds for it.
    ///
    /// # Errors
    /// [`HandleError::Full`] when every local id is in use.
    pub fn register(&self, make: impl FnOnce(Handle) -> T) -> Result<(Handle, T), HandleError> {
        let mut inner = write(&self.inner);
        loop {
            let size = inner.slots.len();
            let mut local = inner.next_local;
            for _ in 0..size {
                if local > Handle::LOCAL_MASK {
                    local = 1; // 0 is reserved
                }
                let index = local as usize & (size - 1);
                if inner.slots[index].is_none() {
                    let handle = Handle::from_parts(self.harbor, local);
                    let value = make(handle);
                    inner.slots[index] = Some((handle, value.clone()));
                    inner.next_local = local + 1;
                    inner.live += 1;
                    return Ok((handle, value));
                }
                local += 1;
            }
            if size * 2 - 1 > Handle::LOCAL_MASK as usize {
                return Err(HandleError::Full);
            }
            inner.grow();
        }
    }

    /// The value stored for `handle`, if it is live.
    pub fn get(&self, handle: Handle) -> Option<T> {
        let inner = read(&self.inner);
        let index = handle.local() as usize & (inner.slots.len() - 1);
        match &inner.slots[index] {
            Some((h, value)) if *h == handle => Some(value.clone()),
            _ => None,
        }
    }

    /// Removes `handle` and releases its names; returns what was stored.
    pub fn retire(&self, handle: Handle) -> Option<T> {
        let mut inner = write(&self.inner);
        let index = handle.local() as usize & (inner.slots.len() - 1);
        match &inner.slots[index] {
            Some((h, _)) if *h == handle => {}
            _ => return None,
        }
        let (_, value) = inner.slots[index].take()?;
        inner.live -= 1;
        if let Some(bound) = inner.names_of.remove(&handle) {
            inner.release_owned(bound.owner, bound.names.len());
            for (scope, name) in bound.names {
                inner.space(scope).remove(&name);
            }
        }
        Some(value)
    }

    /// Removes every handle (skynet's `skynet_handle_retireall`); returns what was stored.
    pub fn retire_all(&self) -> Vec<(Handle, T)> {
        let mut inner = write(&self.inner);
        let taken: Vec<(Handle, T)> = inner.slots.iter_mut().filter_map(Option::take).collect();
        inner.live = 0;
        inner.names.clear();
        inner.private.clear();
        inner.names_of.clear();
        inner.names_per_owner.clear();
        taken
    }

    /// Number of live handles.
    pub fn len(&self) -> usize {
        read(&self.inner).live
    }

    /// True when no handle is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live handle with its value, in slot order.
    pub fn list(&self) -> Vec<(Handle, T)> {
        read(&self.inner)
            .slots
            .iter()
            .flatten()
            .map(|(h, v)| (*h, v.clone()))
            .collect()
    }

    /// Binds `name` to a live `handle` in the shared name space. A name that is already
    /// bound keeps its first binding (binding it again to the same handle succeeds).
    ///
    /// # Errors
    /// [`HandleError::InvalidName`], [`HandleError::NameTaken`], [`HandleError::NoSuchHandle`].
    pub fn bind_name(&self, name: &str, handle: Handle) -> Result<(), HandleError> {
        self.bind_name_in(SHARED_SCOPE, name, handle)
    }

    /// Binds `name` to a live `handle` in name space `scope` ([`SHARED_SCOPE`] or a
    /// private one, seen only by lookups of that scope).
    ///
    /// # Errors
    /// As [`HandleTable::bind_name`]; a name is taken when bound in the same scope.
    pub fn bind_name_in(
        &self,
        scope: usize,
        name: &str,
        handle: Handle,
    ) -> Result<(), HandleError> {
        self.bind_name_capped(scope, name, handle, 0, NameCaps::NONE)
    }

    /// Binds `name` as [`HandleTable::bind_name_in`], counting it for `owner` (the first
    /// binding of a handle decides whose its names are) within `caps`.
    ///
    /// # Errors
    /// As [`HandleTable::bind_name_in`]; [`HandleError::TooManyNames`] past a cap.
    pub fn bind_name_capped(
        &self,
        scope: usize,
        name: &str,
        handle: Handle,
        owner: usize,
        caps: NameCaps,
    ) -> Result<(), HandleError> {
        validate_name(name)?;
        let mut inner = write(&self.inner);
        let index = handle.local() as usize & (inner.slots.len() - 1);
        if !matches!(&inner.slots[index], Some((h, _)) if *h == handle) {
            return Err(HandleError::NoSuchHandle(handle));
        }
        let space = inner.space(scope);
        match space.get(name) {
            // Binding a name again to its own service (new code after an upgrade) is a no-op.
            Some(bound) if *bound == handle => return Ok(()),
            Some(_) => return Err(HandleError::NameTaken(name.to_string())),
            None => {}
        }
        let held = inner
            .names_of
            .get(&handle)
            .map_or(0, |bound| bound.names.len());
        if held >= caps.per_service {
            return Err(HandleError::TooManyNames(format!(
                "{handle} holds its limit of {} names",
                caps.per_service
            )));
        }
        let owner = inner
            .names_of
            .get(&handle)
            .map_or(owner, |bound| bound.owner);
        let owned = inner.names_per_owner.get(&owner).copied().unwrap_or(0);
        if owned >= caps.per_owner {
            return Err(HandleError::TooManyNames(format!(
                "its tenant's services hold their limit of {} names",
                caps.per_owner
            )));
        }
        inner.space(scope).insert(name.to_string(), handle);
        *inner.names_per_owner.entry(owner).or_default() += 1;
        let bound = inner.names_of.entry(handle).or_default();
        bound.owner = owner;
        bound.names.push((scope, name.to_string()));
        Ok(())
    }

    /// True if one of `names` is bound to `handle` in the shared name space: a lookup per
    /// name, however many names the handle has.
    pub fn has_any_name(&self, handle: Handle, names: &[String]) -> bool {
        let inner = read(&self.inner);
        names
            .iter()
            .any(|name| inner.names.get(name) == Some(&handle))
    }

    /// The handle bound to `name` in the shared name space.
    pub fn find_name(&self, name: &str) -> Option<Handle> {
        read(&self.inner).names.get(name).copied()
    }

    /// The handle a lookup from name space `scope` finds: its own binding of `name`
    /// first, then the shared one.
    pub fn find_name_in(&self, scope: usize, name: &str) -> Option<Handle> {
        let inner = read(&self.inner);
        if scope != SHARED_SCOPE {
            if let Some(handle) = inner.private.get(&scope).and_then(|s| s.get(name)) {
                return Some(*handle);
            }
        }
        inner.names.get(name).copied()
    }

    /// Every name of the shared name space with its handle, sorted by name.
    pub fn names(&self) -> Vec<(String, Handle)> {
        let mut names: Vec<_> = read(&self.inner)
            .names
            .iter()
            .map(|(n, h)| (n.clone(), *h))
            .collect();
        names.sort();
        names
    }
}

impl<T> Inner<T> {
    /// Gives back `count` names of `owner`.
    fn release_owned(&mut self, owner: usize, count: usize) {
        if let Some(owned) = self.names_per_owner.get_mut(&owner) {
            *owned = owned.saturating_sub(count);
            if *owned == 0 {
                self.names_per_owner.remove(&owner);
            }
        }
    }

    /// The names of `scope`.
    fn space(&mut self, scope: usize) -> &mut HashMap<String, Handle> {
        if scope == SHARED_SCOPE {
            &mut self.names
        } else {
            self.private.entry(scope).or_default()
        }
    }

    /// Doubles the slot array, rehashing every entry by its local id.
    fn grow(&mut self) {
        let new_size = self.slots.len() * 2;
        let mut slots: Vec<Option<(Handle, T)>> = (0..new_size).map(|_| None).collect();
        for entry in self.slots.drain(..).flatten() {
            let index = entry.0.local() as usize & (new_size - 1);
            slots[index] = Some(entry);
        }
        self.slots = slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_start_at_one_and_carry_the_harbor() {
        let table = HandleTable::<u32>::new(2);
        let (a, _) = table.register(|_| 7).unwrap();
        assert_eq!(a, Handle(0x0200_0001));
        assert_eq!(table.get(a), Some(7));
        assert_eq!(
            table.get(Handle(1)),
            None,
            "harbor bits are part of the handle"
        );
    }

    #[test]
    fn allocation_walks_forward_and_does_not_reuse_a_retired_handle_at_once() {
        let table = HandleTable::<()>::new(0);
        let first: Vec<Handle> = (0..3).map(|_| table.register(|_| ()).unwrap().0).collect();
        assert_eq!(first, vec![Handle(1), Handle(2), Handle(3)]);
        table.retire(Handle(2)).unwrap();
        let next = table.register(|_| ()).unwrap().0;
        assert_eq!(
            next,
            Handle(4),
            "the freed handle 2 is not handed out again right away"
        );
        assert_eq!(table.get(Handle(2)), None);
    }

    #[test]
    fn the_table_grows_and_keeps_every_entry() {
        let table = HandleTable::<u32>::new(0);
        let handles: Vec<Handle> = (0..1000)
            .map(|i| table.register(|_| i).unwrap().0)
            .collect();
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(table.get(*h), Some(i as u32));
        }
        assert_eq!(table.len(), 1000);
        assert_eq!(table.list().len(), 1000);
    }

    #[test]
    fn a_freed_slot_is_reused_only_by_a_different_handle_number() {
        // Four slots, all taken by handles 1..=4; free handle 1 (slot 1).
        let table = HandleTable::<()>::new(0);
        for _ in 0..4 {
            table.register(|_| ()).unwrap();
        }
        table.retire(Handle(1)).unwrap();
        // The walk continues at 5, which hashes to slot 1: same slot, new handle.
        let (h, _) = table.register(|_| ()).unwrap();
        assert_eq!(h, Handle(5));
        assert_eq!(table.get(Handle(1)), None);
    }

    #[test]
    fn names_bind_once_and_are_released_with_their_handle() {
        let table = HandleTable::<()>::new(0);
        let (a, _) = table.register(|_| ()).unwrap();
        let (b, _) = table.register(|_| ()).unwrap();
        table.bind_name(".db", a).unwrap();
        assert_eq!(
            table.bind_name(".db", b),
            Err(HandleError::NameTaken(".db".into()))
        );
        assert_eq!(table.find_name(".db"), Some(a), "the first binding is kept");
        assert_eq!(
            table.bind_name(".db", a),
            Ok(()),
            "binding it again to its own is fine"
        );
        table.bind_name(".alias", a).unwrap();
        table.retire(a).unwrap();
        assert_eq!(table.find_name(".db"), None);
        assert_eq!(table.find_name(".alias"), None);
        table.bind_name(".db", b).unwrap();
        assert_eq!(table.find_name(".db"), Some(b));
    }

    #[test]
    fn names_are_capped_per_service_and_per_owner_and_given_back_with_the_handle() {
        let table = HandleTable::<()>::new(0);
        let caps = NameCaps {
            per_service: 2,
            per_owner: 3,
        };
        let (a, _) = table.register(|_| ()).unwrap();
        let (b, _) = table.register(|_| ()).unwrap();
        let bind = |name: &str, handle| table.bind_name_capped(7, name, handle, 1, caps);
        bind(".a1", a).unwrap();
        bind(".a2", a).unwrap();
        assert!(matches!(bind(".a3", a), Err(HandleError::TooManyNames(_))));
        bind(".b1", b).unwrap();
        assert!(
            matches!(bind(".b2", b), Err(HandleError::TooManyNames(why)) if why.contains("tenant")),
            "the owner's cap"
        );
        // Another owner is not held to owner 1's count.
        let (c, _) = table.register(|_| ()).unwrap();
        table.bind_name_capped(8, ".c1", c, 2, caps).unwrap();
        table.retire(a).unwrap();
        bind(".b2", b).unwrap();
        assert_eq!(table.find_name_in(7, ".b2"), Some(b));
    }

    #[test]
    fn a_private_scope_sees_its_own_names_first_and_nobody_else_sees_them() {
        let table = HandleTable::<()>::new(0);
        let (shared, _) = table.register(|_| ()).unwrap();
        let (mine, _) = table.register(|_| ()).unwrap();
        let (theirs, _) = table.register(|_| ()).unwrap();
        table.bind_name_in(3, ".room", mine).unwrap();
        table.bind_name_in(4, ".room", theirs).unwrap();
        assert_eq!(
            table.find_name(".room"),
            None,
            "private names are not shared"
        );
        table.bind_name(".room", shared).unwrap();
        assert_eq!(table.find_name_in(3, ".room"), Some(mine));
        assert_eq!(table.find_name_in(4, ".room"), Some(theirs));
        assert_eq!(table.find_name_in(5, ".room"), Some(shared));
        assert_eq!(table.find_name(".room"), Some(shared));
        assert!(
            !table.has_any_name(mine, &[".room".to_string()]),
            "has_any_name is about shared names"
        );
        assert_eq!(
            table.bind_name_in(3, ".room", theirs),
            Err(HandleError::NameTaken(".room".into()))
        );
        table.retire(mine).unwrap();
        assert_eq!(table.find_name_in(3, ".room"), Some(shared));
    }

    #[test]
    fn names_are_validated() {
        let table = HandleTable::<()>::new(0);
        let (a, _) = table.register(|_| ()).unwrap();
        for bad in [
            "",
            ".",
            ":1",
            ".a b",
            "sixteen_chars_xx",
            &format!(".{}", "x".repeat(255)),
        ] {
            assert!(
                matches!(table.bind_name(bad, a), Err(HandleError::InvalidName(_))),
                "{bad:?}"
            );
        }
        table.bind_name("global15chars__", a).unwrap();
        assert_eq!(
            table.bind_name(".x", Handle(99)),
            Err(HandleError::NoSuchHandle(Handle(99)))
        );
    }

    #[test]
    fn retire_all_empties_the_table() {
        let table = HandleTable::<u8>::new(0);
        for i in 0..10 {
            table.register(|_| i).unwrap();
        }
        table.bind_name(".x", Handle(3)).unwrap();
        assert_eq!(table.retire_all().len(), 10);
        assert!(table.is_empty());
        assert_eq!(table.find_name(".x"), None);
    }

    #[test]
    fn allocation_wraps_past_the_24_bit_space_skipping_zero() {
        let table = HandleTable::<()>::new(0);
        write(&table.inner).next_local = Handle::LOCAL_MASK;
        assert_eq!(
            table.register(|_| ()).unwrap().0,
            Handle(Handle::LOCAL_MASK)
        );
        assert_eq!(table.register(|_| ()).unwrap().0, Handle(1));
    }

    #[test]
    fn concurrent_registration_gives_distinct_handles() {
        let table = std::sync::Arc::new(HandleTable::<()>::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let table = table.clone();
                std::thread::spawn(move || {
                    (0..2000)
                        .map(|_| table.register(|_| ()).unwrap().0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Handle> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 8000);
        assert_eq!(table.len(), 8000);
    }
}
