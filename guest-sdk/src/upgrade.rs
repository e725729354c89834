//! Hot upgrade (docs/upgrade.md): replace a running service's code at its address, and hand
//! the old code's state to the new.
//!
//! A service that wants its state to survive an upgrade keeps it in an [`Upgradable`] value
//! shared with [`keep`]; its start function asks [`restored`] for the state the previous
//! code handed over (`None` on a fresh start). Without [`keep`], an upgrade starts the new
//! code fresh at the same address. Calls the old code was waiting on end with it: their
//! replies are dropped by the host, and requests it had not answered get errors.
//!
//! ```no_run
//! use std::{cell::RefCell, rc::Rc};
//! use serde::{Deserialize, Serialize};
//! use skywasm_guest::{self as sky, upgrade::Upgradable};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Scores {
//!     total: u64,
//! }
//!
//! impl Upgradable for Scores {
//!     const VERSION: u32 = 1;
//! }
//!
//! fn start(_args: &str) -> sky::Result<()> {
//!     let scores = Rc::new(RefCell::new(sky::upgrade::restored::<Scores>()?.unwrap_or_default()));
//!     sky::upgrade::keep(scores.clone());
//!     // ... dispatch handlers use `scores` ...
//!     Ok(())
//! }
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use skywasm_abi::{sys, Handle};

use crate::error::{Error, Result};

/// State that survives an upgrade: serialized by the old code, deserialized by the new.
pub trait Upgradable: Serialize + DeserializeOwned + 'static {
    /// The version of this state's format, saved with it.
    const VERSION: u32;

    /// Builds the state from an other version's bytes (the old code saved `version`). The
    /// default refuses, which fails the upgrade: the old code carries on.
    ///
    /// # Errors
    /// Why the bytes cannot become this state.
    fn migrate(version: u32, bytes: &[u8]) -> Result<Self> {
        let _ = bytes;
        Err(Error::Other(format!(
            "cannot restore state version {version} as version {}",
            Self::VERSION
        )))
    }
}

type Producer = Box<dyn Fn() -> Result<(u32, Vec<u8>)>>;

thread_local! {
    /// What `skywasm_snapshot` hands over: set by [`keep`].
    static PRODUCER: RefCell<Option<Producer>> = const { RefCell::new(None) };
    /// What `skywasm_restore` received, until [`restored`] takes it.
    static RESTORED: RefCell<Option<(u32, Vec<u8>)>> = const { RefCell::new(None) };
}

/// Hands `state` to this service's next code when it is upgraded (replacing what an earlier
/// call kept).
pub fn keep<T: Upgradable>(state: Rc<RefCell<T>>) {
    let producer: Producer = Box::new(move || {
        let bytes = postcard::to_allocvec(&*state.borrow())
            .map_err(|e| Error::Codec(format!("saving the state: {e}")))?;
        Ok((T::VERSION, bytes))
    });
    PRODUCER.with(|p| *p.borrow_mut() = Some(producer));
}

/// The state the previous code handed over, when an upgrade started this code with one;
/// `Ok(None)` on a fresh start. Taken once.
///
/// # Errors
/// The bytes do not decode as `T` (or [`Upgradable::migrate`] refused them). Returning the
/// error from the start function fails the upgrade, and the old code carries on.
pub fn restored<T: Upgradable>() -> Result<Option<T>> {
    let Some((version, bytes)) = RESTORED.with(|r| r.borrow_mut().take()) else {
        return Ok(None);
    };
    if version != T::VERSION {
        return T::migrate(version, &bytes).map(Some);
    }
    postcard::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| Error::Codec(format!("restoring the state (version {version}): {e}")))
}

/// How an upgrade went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgraded {
    /// The new code runs and took the old code's state.
    Restored {
        /// The state's version.
        version: u32,
        /// Its size in bytes.
        bytes: usize,
    },
    /// The new code runs and started fresh (the reason says why).
    Fresh(String),
}

/// Replaces the code of `target` (`:hex` or a name) with `name` — a module, or for a Lua
/// service a script — keeping its arguments unless `args` is not empty, once the message it
/// is running now is done.
///
/// # Errors
/// [`Error::Host`] when the host refuses the request (no such service, not allowed, an
/// upgrade already pending); [`Error::Other`] with the reason when the upgrade failed and
/// the old code carries on.
pub async fn upgrade(target: &str, name: &str, args: &str) -> Result<Upgraded> {
    let param = format!("{target} {name} {args}");
    let session = crate::command("UPGRADE", param.trim_end())?
        .trim()
        .parse::<i32>()
        .map_err(|e| Error::Other(format!("UPGRADE answered no session: {e}")))?;
    let reply = crate::runtime::reply(Handle::NONE, session).await?;
    parse_outcome(&String::from_utf8_lossy(&reply))
}

/// Reads the host's outcome text: `restored VERSION BYTES`, `fresh REASON`, `failed REASON`.
fn parse_outcome(text: &str) -> Result<Upgraded> {
    let (kind, rest) = text.split_once(' ').unwrap_or((text, ""));
    match kind {
        "restored" => {
            let mut numbers = rest.split(' ').map(str::parse::<u64>);
            match (numbers.next(), numbers.next()) {
                (Some(Ok(version)), Some(Ok(bytes))) => Ok(Upgraded::Restored {
                    version: version as u32,
                    bytes: bytes as usize,
                }),
                _ => Err(Error::Other(format!("unexpected upgrade outcome: {text}"))),
            }
        }
        "fresh" => Ok(Upgraded::Fresh(rest.to_string())),
        "failed" => Err(Error::Other(format!("upgrade failed: {rest}"))),
        _ => Err(Error::Other(format!("unexpected upgrade outcome: {text}"))),
    }
}

/// Entry points used by [`crate::service!`]. Not part of the public API.
#[doc(hidden)]
pub mod entry {
    use super::*;

    /// `skywasm_snapshot`: hands over what [`keep`] holds; 1 (refusing the upgrade) when it
    /// cannot be saved.
    pub fn snapshot() -> i32 {
        let produced = PRODUCER.with(|p| p.borrow().as_ref().map(|produce| produce()));
        match produced {
            None => 0,
            Some(Ok((version, bytes))) => match sys::upgrade_state(version, &bytes) {
                0 => 0,
                _ => 1,
            },
            Some(Err(e)) => {
                crate::log(&format!("upgrade refused: {e}"));
                1
            }
        }
    }

    /// `skywasm_restore`: keeps the state for [`restored`]; version 0 with no bytes means
    /// the old code handed over nothing.
    pub fn restore(version: u32, ptr: u32, len: u32) -> i32 {
        if len == 0 && version == 0 {
            return 0;
        }
        let bytes = if len == 0 {
            Vec::new()
        } else {
            // SAFETY: the host placed `len` bytes with `skywasm_alloc(len)`, whose buffer is
            // a `Vec` of that capacity handed out and forgotten by `alloc`.
            unsafe { Vec::from_raw_parts(ptr as usize as *mut u8, len as usize, len as usize) }
        };
        RESTORED.with(|r| *r.borrow_mut() = Some((version, bytes)));
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct V2 {
        name: String,
        total: u64,
    }

    impl Upgradable for V2 {
        const VERSION: u32 = 2;

        fn migrate(version: u32, bytes: &[u8]) -> Result<Self> {
            match version {
                1 => Ok(V2 {
                    name: "migrated".into(),
                    total: postcard::from_bytes(bytes).map_err(|e| Error::Codec(e.to_string()))?,
                }),
                _ => Err(Error::Other("unknown version".into())),
            }
        }
    }

    #[test]
    fn state_round_trips_and_older_versions_migrate() {
        let state = V2 {
            name: "a".into(),
            total: 7,
        };
        let bytes = postcard::to_allocvec(&state).unwrap();
        RESTORED.with(|r| *r.borrow_mut() = Some((2, bytes)));
        assert_eq!(restored::<V2>().unwrap(), Some(state));
        assert_eq!(restored::<V2>().unwrap(), None, "taken once");
        RESTORED.with(|r| *r.borrow_mut() = Some((1, postcard::to_allocvec(&41u64).unwrap())));
        assert_eq!(restored::<V2>().unwrap().unwrap().total, 41);
        RESTORED.with(|r| *r.borrow_mut() = Some((9, vec![1, 2])));
        assert!(restored::<V2>().is_err());
        RESTORED.with(|r| *r.borrow_mut() = Some((2, vec![0xff; 3])));
        assert!(restored::<V2>().is_err(), "bad bytes are an error");
    }

    #[test]
    fn outcomes_parse() {
        assert_eq!(
            parse_outcome("restored 3 120").unwrap(),
            Upgraded::Restored {
                version: 3,
                bytes: 120
            }
        );
        assert_eq!(
            parse_outcome("fresh no state").unwrap(),
            Upgraded::Fresh("no state".into())
        );
        assert!(parse_outcome("failed the new code did not start")
            .unwrap_err()
            .to_string()
            .contains("did not start"));
        assert!(parse_outcome("restored x").is_err());
    }
}
