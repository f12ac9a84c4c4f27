//! The controller: a thin loop around the pure planner.

pub mod metrics;
pub mod planner;
pub mod reasons;
pub mod reconciler;
pub mod runner;
pub mod translate;

#[cfg(test)]
mod planner_tests;
