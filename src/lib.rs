//! journey-operator: declarative, GitOps-native lifecycle for customer journeys.

pub mod api;
pub mod control_plane;
pub mod controller;
pub mod dataplane;
pub mod demo;
pub mod engine;
pub mod panics;
pub mod plan;
pub mod tls;
