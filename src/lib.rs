//! journey-operator: declarative, GitOps-native lifecycle for customer journeys.

pub mod api;
pub mod controller;
pub mod dataplane;
pub mod engine;
pub mod engine_api;
pub mod engine_service;
pub mod panics;
pub mod plan;
pub mod serving;
pub mod tls;
