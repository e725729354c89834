//! Values the host keeps for services that share them (skynet.stm's objects,
//! skynet.sharetable's tables), alive while someone holds them: the service that made one
//! (until it lets go), copies handed out in messages that no reader took yet, and readers
//! (once per copy taken). A service that ends lets go of all it held, as its Lua VM's
//! collector would have in skynet. Ids are never 0 and fit a 32-bit light userdata.

use std::collections::HashMap;
use std::sync::Mutex;

use skywasm_abi::{Handle, HostError};

use crate::sync::lock;

/// The values of one kind on one node.
pub(crate) struct HeldStore<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    entries: HashMap<u32, Entry<T>>,
    /// service -> the ids it holds and how many holds on each, to let go when it ends
    held: HashMap<Handle, HashMap<u32, u32>>,
    last_id: u32,
}

struct Entry<T> {
    value: T,
    /// The service that made it, until it lets go.
    maker: Option<Handle>,
    /// Copies handed out that no reader took yet.
    in_transit: usize,
    /// Readers, with how many copies each took.
    readers: HashMap<Handle, u32>,
}

impl<T> Default for HeldStore<T> {
    fn default() -> Self {
        HeldStore {
            state: Mutex::new(State {
                entries: HashMap::new(),
                held: HashMap::new(),
                last_id: 0,
            }),
        }
    }
}

impl<T> State<T> {
    fn entry(&mut self, id: u32) -> Result<&mut Entry<T>, HostError> {
        self.entries.get_mut(&id).ok_or(HostError::InvalidArgument)
    }

    fn note_hold(&mut self, owner: Handle, id: u32) {
        *self.held.entry(owner).or_default().entry(id).or_insert(0) += 1;
    }

    fn forget_hold(&mut self, owner: Handle, id: u32) {
        if let Some(ids) = self.held.get_mut(&owner) {
            if decrement(ids, &id) && ids.is_empty() {
                self.held.remove(&owner);
            }
        }
    }

    /// Takes value `id` out when nothing holds it; the caller drops it after the lock (a
    /// large value is not freed while other services wait for the store).
    fn take_if_unheld(&mut self, id: u32) -> Option<Entry<T>> {
        let unheld = self
            .entries
            .get(&id)
            .is_some_and(|e| e.maker.is_none() && e.in_transit == 0 && e.readers.is_empty());
        if unheld {
            self.entries.remove(&id)
        } else {
            None
        }
    }
}

/// Takes one from `key`'s count, removing it at zero; false when there was none.
fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) -> bool {
    match counts.get_mut(key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            true
        }
        Some(_) => {
            counts.remove(key);
            true
        }
        None => false,
    }
}

impl<T> HeldStore<T> {
    /// Keeps `value`, held by `maker`; its id.
    pub(crate) fn create(&self, maker: Handle, value: T) -> u32 {
        let mut state = lock(&self.state);
        let mut id = state.last_id;
        loop {
            id = id.wrapping_add(1).max(1);
            if !state.entries.contains_key(&id) {
                break;
            }
        }
        state.last_id = id;
        state.entries.insert(
            id,
            Entry {
                value,
                maker: Some(maker),
                in_transit: 0,
                readers: HashMap::new(),
            },
        );
        state.note_hold(maker, id);
        id
    }

    /// Runs `f` on value `id` and whether `caller` is its maker, under the store's lock.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown id.
    pub(crate) fn with<R>(
        &self,
        id: u32,
        caller: Handle,
        f: impl FnOnce(&mut T, bool) -> R,
    ) -> Result<R, HostError> {
        let mut state = lock(&self.state);
        let entry = state.entry(id)?;
        let is_maker = entry.maker == Some(caller);
        Ok(f(&mut entry.value, is_maker))
    }

    /// A copy to hand to a reader in a message: it keeps the value until a reader takes
    /// it ([`HeldStore::adopt`]).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown id.
    pub(crate) fn copy(&self, id: u32) -> Result<(), HostError> {
        lock(&self.state).entry(id)?.in_transit += 1;
        Ok(())
    }

    /// `reader` takes a copy.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown id or one with no copy in transit.
    pub(crate) fn adopt(&self, reader: Handle, id: u32) -> Result<(), HostError> {
        let mut state = lock(&self.state);
        let entry = state.entry(id)?;
        if entry.in_transit == 0 {
            return Err(HostError::InvalidArgument);
        }
        entry.in_transit -= 1;
        *entry.readers.entry(reader).or_insert(0) += 1;
        state.note_hold(reader, id);
        Ok(())
    }

    /// `owner` lets go of its hold: as the maker when `as_maker` (then `on_maker_gone` runs
    /// on the value), else of one reader's. The value goes with its last hold.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown id or a hold `owner` does not have.
    pub(crate) fn release(
        &self,
        owner: Handle,
        id: u32,
        as_maker: bool,
        on_maker_gone: impl FnOnce(&mut T),
    ) -> Result<(), HostError> {
        let mut state = lock(&self.state);
        let entry = state.entry(id)?;
        if as_maker {
            if entry.maker != Some(owner) {
                return Err(HostError::InvalidArgument);
            }
            entry.maker = None;
            on_maker_gone(&mut entry.value);
        } else if !decrement(&mut entry.readers, &owner) {
            return Err(HostError::InvalidArgument);
        }
        state.forget_hold(owner, id);
        let gone = state.take_if_unheld(id);
        drop(state);
        drop(gone);
        Ok(())
    }

    /// A service ended: every hold it had goes (`on_maker_gone` runs on what it made).
    pub(crate) fn service_ended(&self, owner: Handle, on_maker_gone: impl Fn(&mut T)) {
        let mut state = lock(&self.state);
        let Some(ids) = state.held.remove(&owner) else {
            return;
        };
        let mut gone = Vec::new();
        for id in ids.into_keys() {
            if let Some(entry) = state.entries.get_mut(&id) {
                if entry.maker == Some(owner) {
                    entry.maker = None;
                    on_maker_gone(&mut entry.value);
                }
                entry.readers.remove(&owner);
            }
            gone.extend(state.take_if_unheld(id));
        }
        drop(state);
        drop(gone);
    }

    /// Whether `owner` makes value `id`.
    pub(crate) fn is_maker(&self, owner: Handle, id: u32) -> bool {
        lock(&self.state)
            .entries
            .get(&id)
            .is_some_and(|e| e.maker == Some(owner))
    }

    /// How many values live (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lives_while_its_maker_a_copy_or_a_reader_holds_it() {
        let (maker, reader) = (Handle(1), Handle(2));
        let store: HeldStore<&str> = HeldStore::default();
        let id = store.create(maker, "v");
        assert_ne!(id, 0);
        assert_eq!(
            store.adopt(reader, id),
            Err(HostError::InvalidArgument),
            "no copy yet"
        );
        store.copy(id).unwrap();
        store.adopt(reader, id).unwrap();
        assert_eq!(store.with(id, maker, |_, is_maker| is_maker), Ok(true));
        assert_eq!(store.with(id, reader, |_, is_maker| is_maker), Ok(false));
        assert_eq!(
            store.release(reader, id, true, |_| {}),
            Err(HostError::InvalidArgument),
            "a reader is not the maker"
        );
        let mut gone = false;
        store.release(maker, id, true, |_| gone = true).unwrap();
        assert!(gone);
        assert_eq!(store.len(), 1, "the reader still holds it");
        store.release(reader, id, false, |_| {}).unwrap();
        assert_eq!(store.len(), 0);
        assert_eq!(store.copy(id), Err(HostError::InvalidArgument));
        // a reader that took two copies holds twice
        let twice = store.create(maker, "t");
        store.copy(twice).unwrap();
        store.copy(twice).unwrap();
        store.adopt(reader, twice).unwrap();
        store.adopt(reader, twice).unwrap();
        store.release(maker, twice, true, |_| {}).unwrap();
        store.release(reader, twice, false, |_| {}).unwrap();
        assert_eq!(store.len(), 1, "one of its two holds is left");
        store.release(reader, twice, false, |_| {}).unwrap();
        assert_eq!(store.len(), 0);
        assert_eq!(
            store.release(reader, twice, false, |_| {}),
            Err(HostError::InvalidArgument)
        );
        let a = store.create(maker, "a");
        let b = store.create(maker, "b");
        assert_ne!(a, b, "ids are not reused while their value lives");
    }

    #[test]
    fn a_service_that_ends_lets_go_of_what_it_held() {
        let (maker, reader) = (Handle(1), Handle(2));
        let store: HeldStore<Option<&str>> = HeldStore::default();
        let id = store.create(maker, Some("v"));
        store.copy(id).unwrap();
        store.adopt(reader, id).unwrap();
        store.service_ended(maker, |v| *v = None);
        assert_eq!(store.with(id, reader, |v, _| *v), Ok(None));
        store.service_ended(reader, |_| {});
        assert_eq!(store.len(), 0);
        // a copy in transit keeps a value whose maker ended
        let kept = store.create(maker, Some("w"));
        store.copy(kept).unwrap();
        store.service_ended(maker, |_| {});
        assert_eq!(store.len(), 1);
        store.adopt(reader, kept).unwrap();
        store.release(reader, kept, false, |_| {}).unwrap();
        assert_eq!(store.len(), 0);
    }
}
