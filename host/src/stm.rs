//! skynet.stm's objects: a byte string one service writes and others read, held once by the
//! host (skynet's `stm_object`: services share no memory here, so the host keeps it). The
//! writer replaces the bytes; a reader asks for them with the version it last saw and gets
//! them only when they changed. An object lives while its writer or any reader holds it:
//! `copy` (skynet's `stm.copy`, handing a reference to another service) takes a hold that
//! the reader made from it gives back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use skywasm_abi::{Handle, HostError};

use crate::sync::lock;

/// The objects of one node.
#[derive(Default)]
pub(crate) struct StmStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    objects: HashMap<u32, Object>,
    /// service -> the objects it holds (once per hold), to let go when it ends
    held: HashMap<Handle, Vec<u32>>,
    last_id: u32,
}

struct Object {
    /// The current bytes and their version; `None` once the writer let go.
    current: Option<(u64, Arc<[u8]>)>,
    /// The service that writes it, until it lets go.
    writer: Option<Handle>,
    /// Copies handed out that no reader took yet (they travel in messages).
    in_transit: usize,
    /// The services that read it, once per reader.
    readers: Vec<Handle>,
    /// Versions given out so far.
    versions: u64,
}

impl Object {
    fn unheld(&self) -> bool {
        self.writer.is_none() && self.in_transit == 0 && self.readers.is_empty()
    }
}

/// What a reader gets ([`StmStore::read`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// The bytes changed since the version the reader saw: the new version and bytes.
    Changed(u64, Arc<[u8]>),
    /// Nothing new.
    Unchanged,
    /// The writer let go: there are no bytes any more.
    Gone,
}

impl State {
    fn object(&mut self, id: u32) -> Result<&mut Object, HostError> {
        self.objects.get_mut(&id).ok_or(HostError::InvalidArgument)
    }

    fn forget_hold(&mut self, owner: Handle, id: u32) {
        if let Some(ids) = self.held.get_mut(&owner) {
            if let Some(at) = ids.iter().position(|&held| held == id) {
                ids.swap_remove(at);
            }
            if ids.is_empty() {
                self.held.remove(&owner);
            }
        }
    }

    fn drop_if_unheld(&mut self, id: u32) {
        if self.objects.get(&id).is_some_and(Object::unheld) {
            self.objects.remove(&id);
        }
    }
}

impl StmStore {
    /// A new object holding `bytes`, written by `owner`; its id (never 0, fits a 32-bit
    /// light userdata).
    pub(crate) fn create(&self, owner: Handle, bytes: Arc<[u8]>) -> u32 {
        let mut state = lock(&self.state);
        let mut id = state.last_id;
        loop {
            id = id.wrapping_add(1).max(1);
            if !state.objects.contains_key(&id) {
                break;
            }
        }
        state.last_id = id;
        state.objects.insert(
            id,
            Object {
                current: Some((1, bytes)),
                writer: Some(owner),
                in_transit: 0,
                readers: Vec::new(),
                versions: 1,
            },
        );
        state.held.entry(owner).or_default().push(id);
        id
    }

    /// Its writer replaces the bytes.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object or one `owner` does not write.
    pub(crate) fn update(&self, owner: Handle, id: u32, bytes: Arc<[u8]>) -> Result<(), HostError> {
        let mut state = lock(&self.state);
        let object = state.object(id)?;
        if object.writer != Some(owner) {
            return Err(HostError::InvalidArgument);
        }
        object.versions += 1;
        object.current = Some((object.versions, bytes));
        Ok(())
    }

    /// A copy to hand to a reader in a message (skynet's `stm.copy`): it keeps the object
    /// until a reader takes it ([`StmStore::adopt`]).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object.
    pub(crate) fn copy(&self, id: u32) -> Result<(), HostError> {
        lock(&self.state).object(id)?.in_transit += 1;
        Ok(())
    }

    /// `owner` takes a copy as its reader.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object or one with no copy in transit.
    pub(crate) fn adopt(&self, owner: Handle, id: u32) -> Result<(), HostError> {
        let mut state = lock(&self.state);
        let object = state.object(id)?;
        if object.in_transit == 0 {
            return Err(HostError::InvalidArgument);
        }
        object.in_transit -= 1;
        object.readers.push(owner);
        state.held.entry(owner).or_default().push(id);
        Ok(())
    }

    /// `owner` lets go of its writer's hold (the bytes go) or of one reader's hold. The
    /// object goes with its last hold.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object or a hold `owner` does not have.
    pub(crate) fn release(&self, owner: Handle, id: u32, writer: bool) -> Result<(), HostError> {
        let mut state = lock(&self.state);
        let object = state.object(id)?;
        if writer {
            if object.writer != Some(owner) {
                return Err(HostError::InvalidArgument);
            }
            object.writer = None;
            object.current = None;
        } else {
            let at = object
                .readers
                .iter()
                .position(|&r| r == owner)
                .ok_or(HostError::InvalidArgument)?;
            object.readers.swap_remove(at);
        }
        state.forget_hold(owner, id);
        state.drop_if_unheld(id);
        Ok(())
    }

    /// A service ended: every hold it had goes (a writer's bytes with it), as its Lua VM's
    /// collector would have let go of them in skynet.
    pub(crate) fn service_ended(&self, owner: Handle) {
        let mut state = lock(&self.state);
        let Some(ids) = state.held.remove(&owner) else {
            return;
        };
        for id in ids {
            if let Some(object) = state.objects.get_mut(&id) {
                if object.writer == Some(owner) {
                    object.writer = None;
                    object.current = None;
                }
                object.readers.retain(|&r| r != owner);
            }
            state.drop_if_unheld(id);
        }
    }

    /// The bytes, if they changed since version `seen` (0: never read).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object.
    pub(crate) fn read(&self, id: u32, seen: u64) -> Result<Read, HostError> {
        let mut state = lock(&self.state);
        let object = state.object(id)?;
        Ok(match &object.current {
            None => Read::Gone,
            Some((version, _)) if *version == seen => Read::Unchanged,
            Some((version, bytes)) => Read::Changed(*version, bytes.clone()),
        })
    }

    /// How many objects live (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.state).objects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Arc<[u8]> {
        Arc::from(text.as_bytes())
    }

    #[test]
    fn readers_see_each_new_version_once_and_the_object_lives_while_held() {
        let (writer, reader) = (Handle(1), Handle(2));
        let store = StmStore::default();
        let id = store.create(writer, bytes("one"));
        assert_ne!(id, 0);
        assert_eq!(
            store.adopt(reader, id),
            Err(HostError::InvalidArgument),
            "no copy yet"
        );
        store.copy(id).unwrap();
        store.adopt(reader, id).unwrap();
        assert_eq!(store.read(id, 0), Ok(Read::Changed(1, bytes("one"))));
        assert_eq!(store.read(id, 1), Ok(Read::Unchanged));
        assert_eq!(
            store.update(reader, id, bytes("x")),
            Err(HostError::InvalidArgument),
            "only the writer writes"
        );
        store.update(writer, id, bytes("two")).unwrap();
        assert_eq!(store.read(id, 1), Ok(Read::Changed(2, bytes("two"))));
        // the writer lets go: the reader sees no bytes, the object stays until it lets go
        store.release(writer, id, true).unwrap();
        assert_eq!(store.read(id, 2), Ok(Read::Gone));
        assert_eq!(store.len(), 1);
        store.release(reader, id, false).unwrap();
        assert_eq!(store.len(), 0);
        assert_eq!(store.read(id, 0), Err(HostError::InvalidArgument));
        assert_eq!(store.copy(id), Err(HostError::InvalidArgument));
        // ids are not reused while their object lives
        let a = store.create(writer, bytes("a"));
        let b = store.create(writer, bytes("b"));
        assert_ne!(a, b);
    }

    #[test]
    fn a_service_that_ends_lets_go_of_what_it_held() {
        let (writer, reader) = (Handle(1), Handle(2));
        let store = StmStore::default();
        let id = store.create(writer, bytes("v"));
        store.copy(id).unwrap();
        store.adopt(reader, id).unwrap();
        store.service_ended(writer);
        assert_eq!(
            store.read(id, 0),
            Ok(Read::Gone),
            "the writer's bytes went with it"
        );
        store.service_ended(reader);
        assert_eq!(store.len(), 0, "the last holder ended: the object is gone");
        // a copy in transit keeps an object whose writer ended
        let kept = store.create(writer, bytes("w"));
        store.copy(kept).unwrap();
        store.service_ended(writer);
        assert_eq!(store.len(), 1);
        store.adopt(reader, kept).unwrap();
        store.release(reader, kept, false).unwrap();
        assert_eq!(store.len(), 0);
    }
}
