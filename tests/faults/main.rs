//! The fault suite: its own test binary, so that it runs alone (cargo runs test binaries
//! one after another) and its five processes do not load the machine under the other
//! integration tests.

#[path = "../it/harness.rs"]
mod harness;
mod linearizable;
mod suite;
