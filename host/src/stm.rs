//! skynet.stm's objects: a byte string one service writes and others read, held once by the
//! host (skynet's `stm_object`: services share no memory here, so the host keeps it). The
//! writer replaces the bytes; a reader asks for them with the version it last saw and gets
//! them only when they changed. An object lives while its writer, a copy in transit or a
//! reader holds it ([`crate::held`]).

use std::sync::Arc;

use skywasm_abi::{Handle, HostError};

use crate::held::HeldStore;

/// The objects of one node.
#[derive(Default)]
pub(crate) struct StmStore {
    objects: HeldStore<Object>,
}

struct Object {
    /// The current bytes and their version; `None` once the writer let go.
    current: Option<(u64, Arc<[u8]>)>,
    /// Versions given out so far.
    versions: u64,
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

/// What goes when the writer lets go (or ends): the bytes.
fn writer_gone(object: &mut Object) {
    object.current = None;
}

impl StmStore {
    /// A new object holding `bytes`, written by `owner`; its id.
    pub(crate) fn create(&self, owner: Handle, bytes: Arc<[u8]>) -> u32 {
        let object = Object {
            current: Some((1, bytes)),
            versions: 1,
        };
        self.objects.create(owner, object)
    }

    /// Its writer replaces the bytes.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object or one `owner` does not write.
    pub(crate) fn update(&self, owner: Handle, id: u32, bytes: Arc<[u8]>) -> Result<(), HostError> {
        self.objects.with(id, owner, |object, is_writer| {
            if !is_writer {
                return Err(HostError::InvalidArgument);
            }
            object.versions += 1;
            object.current = Some((object.versions, bytes));
            Ok(())
        })?
    }

    /// A copy to hand to a reader in a message (skynet's `stm.copy`).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object.
    pub(crate) fn copy(&self, id: u32) -> Result<(), HostError> {
        self.objects.copy(id)
    }

    /// `owner` takes a copy as its reader.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object or one with no copy in transit.
    pub(crate) fn adopt(&self, owner: Handle, id: u32) -> Result<(), HostError> {
        self.objects.adopt(owner, id)
    }

    /// `owner` lets go of its writer's hold (the bytes go) or of one reader's hold.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object or a hold `owner` does not have.
    pub(crate) fn release(&self, owner: Handle, id: u32, writer: bool) -> Result<(), HostError> {
        self.objects.release(owner, id, writer, writer_gone)
    }

    /// A service ended: every hold it had goes, a writer's bytes with it.
    pub(crate) fn service_ended(&self, owner: Handle) {
        self.objects.service_ended(owner, writer_gone);
    }

    /// The bytes, if they changed since version `seen` (0: never read).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown object.
    pub(crate) fn read(&self, id: u32, seen: u64) -> Result<Read, HostError> {
        self.objects
            .with(id, Handle::NONE, |object, _| match &object.current {
                None => Read::Gone,
                Some((version, _)) if *version == seen => Read::Unchanged,
                Some((version, bytes)) => Read::Changed(*version, bytes.clone()),
            })
    }

    /// How many objects live (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.objects.len()
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
}
