//! Service addresses: skynet's 32-bit handles (`skynet_handle.h`).
//!
//! The high 8 bits are the harbor (node) id, the low 24 bits the local id. The text form is
//! skynet's `:%08x`. Handle 0 is never a service.

use core::fmt;

/// A service address: harbor id in the high 8 bits, local id in the low 24.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct Handle(pub u32);

impl Handle {
    /// Bits the harbor id is shifted by (`HANDLE_REMOTE_SHIFT`).
    pub const REMOTE_SHIFT: u32 = 24;
    /// Mask of the local part (`HANDLE_MASK`).
    pub const LOCAL_MASK: u32 = 0x00ff_ffff;
    /// The null address: no service, or "the system" as a message source.
    pub const NONE: Handle = Handle(0);

    /// Builds a handle from a harbor id and a local id (the local id is masked to 24 bits).
    pub const fn from_parts(harbor: u8, local: u32) -> Handle {
        Handle(((harbor as u32) << Self::REMOTE_SHIFT) | (local & Self::LOCAL_MASK))
    }

    /// The harbor (node) id in the high 8 bits.
    pub const fn harbor(self) -> u8 {
        (self.0 >> Self::REMOTE_SHIFT) as u8
    }

    /// The local id in the low 24 bits.
    pub const fn local(self) -> u32 {
        self.0 & Self::LOCAL_MASK
    }

    /// True for the null address.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// Parses skynet's text form `:0000000a` (hex digits after a colon, at most 8).
    pub fn parse(text: &str) -> Option<Handle> {
        let hex = text.strip_prefix(':')?;
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(Handle)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{:08x}", self.0)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<u32> for Handle {
    fn from(raw: u32) -> Handle {
        Handle(raw)
    }
}

impl From<Handle> for u32 {
    fn from(handle: Handle) -> u32 {
        handle.0
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn text_form_is_skynets() {
        assert_eq!(Handle(0x0a).to_string(), ":0000000a");
        assert_eq!(Handle(0xff00_0001).to_string(), ":ff000001");
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        for raw in [1u32, 0x0a, 0x0100_000a, u32::MAX] {
            assert_eq!(Handle::parse(&Handle(raw).to_string()), Some(Handle(raw)));
        }
        assert_eq!(Handle::parse(":a"), Some(Handle(10)));
        for bad in [
            "",
            ":",
            "0000000a",
            ":xyz",
            ":123456789",
            ".name",
            ":-1",
            ":+1",
        ] {
            assert_eq!(Handle::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parts() {
        let h = Handle::from_parts(3, 0x1234_5678);
        assert_eq!(h.harbor(), 3);
        assert_eq!(h.local(), 0x34_5678);
        assert!(Handle::NONE.is_none());
    }
}
