//! A service's life: what is asked of the worker holding its queue, and where it is in its
//! life ([`work`]).

pub(crate) mod work;
