//! Integration tests against the real local control plane started by `hack/test.sh`.

mod admission;
mod control_plane;
mod controller;
mod controller_support;
mod crd;
mod examples;
mod semantics;
mod support;
