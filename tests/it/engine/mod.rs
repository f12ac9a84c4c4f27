//! Semantic tests of the journey engine on the real SQLite store (temp file),
//! driven by a virtual clock. Each test names the seed it comes from.

pub mod common;
mod crash;
mod declare;
mod entrance;
mod expressions;
mod feed;
mod holds;
mod lifecycle;
mod pause;
mod resume;
mod runs;
mod scheduler;
mod steps;
mod templates;
pub mod under_test;
mod upgrade;
mod versions;
mod webhook;
