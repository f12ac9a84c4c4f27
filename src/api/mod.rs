//! The Journey API: the only module that knows the YAML shape.

pub mod admission;
pub mod annotations;
pub mod crd;
pub mod duration;
pub mod hold;
pub mod journey;
pub mod schema_check;
pub mod status;
pub mod validate;

pub use journey::{Journey, JourneySpec};
/// The lifecycle table and its enums live in the model crate (the engine enforces them too).
pub use journey_model::lifecycle::{self, JourneyState};
pub use status::{JourneyStatus, Phase};
