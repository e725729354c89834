//! An incoming message and the obligation to answer it.

use std::cell::Cell;

use skywasm_abi::{error, ptype, Handle};
use skywasm_pack::Value;

use crate::error::{Error, Result};
use crate::sys;

/// A message delivered to one of this service's handlers.
///
/// When it carries a session (the sender used `call`), it must be answered exactly once:
/// with [`Request::ret`], [`Request::fail`], or later through a [`Responder`]. A request
/// dropped unanswered is answered with an error (and logged), so the caller never hangs.
#[derive(Debug)]
pub struct Request {
    ptype: u32,
    session: i32,
    source: Handle,
    data: Vec<u8>,
    answered: Cell<bool>,
}

impl Request {
    pub(crate) fn new(ptype: u32, session: i32, source: Handle, data: Vec<u8>) -> Request {
        Request {
            ptype,
            session,
            source,
            data,
            answered: Cell::new(false),
        }
    }

    /// The message type (`skywasm_abi::ptype`).
    pub fn ptype(&self) -> u32 {
        self.ptype
    }

    /// The sender's session: 0 for a one-way message.
    pub fn session(&self) -> i32 {
        self.session
    }

    /// The sender.
    pub fn source(&self) -> Handle {
        self.source
    }

    /// The body.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the body out.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.data)
    }

    /// Decodes a `skynet.pack` body (the `"lua"` protocol).
    ///
    /// # Errors
    /// [`Error::Codec`] for a malformed body.
    pub fn values(&self) -> Result<Vec<Value>> {
        Ok(skywasm_pack::unpack(&self.data)?)
    }

    /// True when the sender waits for an answer.
    pub fn expects_reply(&self) -> bool {
        self.session != 0 && !self.answered.get()
    }

    /// Answers with a body (PTYPE_RESPONSE). A no-op for one-way messages.
    ///
    /// # Errors
    /// [`Error::Host`] if the answer cannot be sent (too large); a dead caller is not an
    /// error (skynet drops replies to exited services silently).
    pub fn ret(&self, data: &[u8]) -> Result<()> {
        if !self.expects_reply() {
            return Ok(());
        }
        self.answered.set(true);
        respond(self.source, self.session, ptype::RESPONSE, data)
    }

    /// Answers with `skynet.pack(values...)`.
    ///
    /// # Errors
    /// As [`Request::ret`], plus [`Error::Codec`] if the values cannot be packed.
    pub fn ret_values(&self, values: &[Value]) -> Result<()> {
        let body = skywasm_pack::pack(values)?;
        self.ret(&body)
    }

    /// Passes the message on to `dest` unchanged, as if its sender had sent it there
    /// (skynet's `skynet.redirect` with the sender and session): `dest` answers the sender
    /// directly. Needs the `redirect` capability.
    ///
    /// # Errors
    /// [`Error::Host`]. With `INVALID_ADDRESS` or `MAILBOX_FULL` (`dest` could not take it)
    /// the host has answered the sender with an error already; with `DENIED` (no
    /// capability) or `TOO_LARGE` nothing was sent and the request is still this
    /// service's to answer.
    pub fn forward(&self, dest: Handle) -> Result<()> {
        let result = crate::api::redirect(dest, self.source, self.ptype, self.session, &self.data);
        let moved = match &result {
            Ok(()) => true,
            Err(e) => matches!(e.code(), Some(error::INVALID_ADDRESS | error::MAILBOX_FULL)),
        };
        if moved {
            self.answered.set(true);
        }
        result
    }

    /// Answers with an error (PTYPE_ERROR): the caller's `call` fails.
    pub fn fail(&self) {
        if self.expects_reply() {
            self.answered.set(true);
            let _ = respond(self.source, self.session, ptype::ERROR, &[]);
        }
    }

    /// Declares that this request gets no answer (skynet's `ignoreret`).
    pub fn ignore(&self) {
        self.answered.set(true);
    }

    /// Moves the obligation to answer into a [`Responder`] to be used later (skynet's
    /// `skynet.response()`).
    pub fn responder(&self) -> Responder {
        let responder = Responder {
            dest: self.source,
            session: if self.expects_reply() {
                self.session
            } else {
                0
            },
        };
        self.answered.set(true);
        responder
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.expects_reply() {
            crate::log(&format!(
                "request from {} (session {}, type {}) dropped without an answer; answering with an error",
                self.source, self.session, self.ptype
            ));
            self.fail();
        }
    }
}

/// A deferred answer to a request. Answer it once; dropping it unanswered answers with an
/// error.
#[derive(Debug)]
pub struct Responder {
    dest: Handle,
    session: i32,
}

impl Responder {
    /// Who will get the answer.
    pub fn dest(&self) -> Handle {
        self.dest
    }

    /// Answers with a body.
    ///
    /// # Errors
    /// As [`Request::ret`].
    pub fn ret(mut self, data: &[u8]) -> Result<()> {
        let session = std::mem::take(&mut self.session);
        if session == 0 {
            return Ok(());
        }
        respond(self.dest, session, ptype::RESPONSE, data)
    }

    /// Answers with `skynet.pack(values...)`.
    ///
    /// # Errors
    /// As [`Request::ret_values`].
    pub fn ret_values(self, values: &[Value]) -> Result<()> {
        let body = skywasm_pack::pack(values)?;
        self.ret(&body)
    }

    /// Answers with an error.
    pub fn fail(mut self) {
        let session = std::mem::take(&mut self.session);
        if session != 0 {
            let _ = respond(self.dest, session, ptype::ERROR, &[]);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.session != 0 {
            let _ = respond(self.dest, self.session, ptype::ERROR, &[]);
        }
    }
}

fn respond(dest: Handle, session: i32, ptype: u32, data: &[u8]) -> Result<()> {
    match sys::send(dest.0, ptype, session, data) {
        0 => Ok(()),
        skywasm_abi::error::INVALID_ADDRESS => Ok(()),
        code => Err(Error::host("ret", code)),
    }
}
