//! CodeGate's domain rules. Everything here is pure: no I/O, no clock, no
//! database. Callers pass in `now` and the facts they read, and get decisions.

pub mod codes;
pub mod generation;
pub mod ids;
pub mod model;
pub mod normalize;
pub mod signing;

pub use codes::{CodeState, RedeemFailure};
