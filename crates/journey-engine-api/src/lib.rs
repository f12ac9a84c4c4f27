//! The engine API, v1: how controllers and tools drive the journey engine over HTTP.
//!
//! - [`v1`]: the versioned wire types (what a `PUT /v1/journeys/{namespace}/{name}` carries and
//!   answers, the change feed's pages, the error body with its [`v1::ErrorCode`]);
//! - [`server`]: the routes, over any [`journey_engine::JourneyEngine`];
//! - [`client`]: [`client::EngineClient`], the same [`journey_engine::JourneyEngine`] trait
//!   over HTTP, so the controller has one code path for an embedded and a remote engine;
//! - [`openapi`]: the OpenAPI document, its schemas generated from the wire types.
//!
//! No Kubernetes here: Cargo keeps `kube` out of this crate.

pub mod client;
pub mod errors;
pub mod openapi;
pub mod server;
pub mod v1;

pub use client::{ClientConfig, EngineClient};
pub use server::{Authorization, Authorizer, ServerOptions, router};
pub use v1::ErrorCode;
