//! The conformance engine shared by `strata check`, the property tests and the runtime tests:
//! which declared capabilities change the model ([`switches`]).

pub mod switches;

pub use switches::{Switch, switches};
