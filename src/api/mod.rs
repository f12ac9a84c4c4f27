//! The Journey API: the only module that knows the YAML shape.

pub mod admission;
pub mod annotations;
pub mod crd;
pub mod duration;
pub mod journey;
pub mod lifecycle;
pub mod schema_check;
pub mod status;
pub mod validate;

pub use journey::{Journey, JourneySpec};
pub use lifecycle::JourneyState;
pub use status::{JourneyStatus, Phase};
