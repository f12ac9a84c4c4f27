//! journey-operator's development tasks as a library: the local control plane (tests,
//! benchmarks and `hack/` start it) and the demo feeder. Nothing here ships in the
//! `journey-operator` binary.

pub mod control_plane;
pub mod demo;
pub mod node;
