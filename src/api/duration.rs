//! The one duration syntax of the API, from the model crate: the schema, the CEL rules,
//! validation and the runtime agree because they share its parser.

pub use journey_model::duration::{DURATION_PATTERN, parse_duration};
