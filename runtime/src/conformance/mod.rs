//! The conformance engine shared by `strata check`, the property tests and the runtime tests:
//! the loop itself ([`engine`]: mount, compare with the model, act, scan, commit, re-import,
//! re-model); which declared capabilities change the model ([`switches`]); the model run beside real
//! operations with the clock bounding the times it cannot know ([`times`]); lower layers
//! read with their overlay xattrs ([`lower`]); the commit round trip ([`round_trip`]).

pub mod engine;
pub mod lower;
pub mod round_trip;
pub mod switches;
pub mod times;

pub use engine::{Action, ActionOut, Checked, Finding, Options, Run, Stage, check};
pub use lower::scan_layer;
pub use round_trip::round_trip_diffs;
pub use switches::{Switch, switches};
pub use times::{Clocked, Window, timed};
