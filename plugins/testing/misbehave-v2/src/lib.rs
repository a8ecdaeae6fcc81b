//! The same source as `misbehave`, built under another version number, so a hot-replace test
//! can tell which version answered.

#[path = "../../misbehave/src/lib.rs"]
mod misbehave;
