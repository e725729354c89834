//! The SDK's error type.

use core::fmt;

use skywasm_abi::{error as code, Handle};

/// Why an SDK operation failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The host refused the operation with an ABI error code (see `skywasm_abi::error`).
    Host {
        /// What was attempted (`"send"`, `"LAUNCH"`, ...).
        op: &'static str,
        /// The negative error code.
        code: i32,
    },
    /// The callee answered with PTYPE_ERROR: it failed, exited, or refused the request.
    CallFailed {
        /// Who was called.
        dest: Handle,
        /// The session of the call.
        session: i32,
        /// Why, when the error reply said (the cluster's replies do): `network: ...`,
        /// `remote error from node ...`, `timeout: ...`.
        reason: Option<String>,
    },
    /// A `skynet.pack` body could not be encoded or decoded.
    Codec(String),
    /// Anything else, with a message.
    Other(String),
}

impl Error {
    /// The ABI error code, for host errors.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Host { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the destination was dead or unknown at send time.
    pub fn is_invalid_address(&self) -> bool {
        matches!(
            self,
            Error::Host {
                code: code::INVALID_ADDRESS | code::UNKNOWN_NAME,
                ..
            }
        )
    }

    pub(crate) fn host(op: &'static str, code: i32) -> Error {
        Error::Host { op, code }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Host { op, code: c } => write!(f, "{op} failed: {} ({c})", code::describe(*c)),
            Error::CallFailed {
                dest,
                session,
                reason: None,
            } => write!(f, "call to {dest} failed (session {session})"),
            Error::CallFailed {
                dest,
                session,
                reason: Some(why),
            } => write!(f, "call to {dest} failed (session {session}): {why}"),
            Error::Codec(why) => write!(f, "bad message body: {why}"),
            Error::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

impl From<skywasm_pack::PackError> for Error {
    fn from(e: skywasm_pack::PackError) -> Self {
        Error::Codec(e.to_string())
    }
}

impl From<skywasm_pack::UnpackError> for Error {
    fn from(e: skywasm_pack::UnpackError) -> Self {
        Error::Codec(e.to_string())
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
