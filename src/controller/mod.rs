//! The controller: a thin loop around the pure planner.

pub mod cache;
pub mod events;
pub mod hold_status;
pub mod holds;
pub mod lazy_engine;
pub mod metrics;
pub mod ops;
pub mod planner;
pub mod reasons;
pub mod reconciler;
pub mod runner;
pub mod translate;
pub mod webhooks;
pub mod written;

#[cfg(test)]
mod planner_tests;
