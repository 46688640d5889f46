//! Plain data shared by every layer (the comment, and soon the technique list and the wire
//! types): it uses no other module of the crate, so anything may depend on it.

pub mod comment;
