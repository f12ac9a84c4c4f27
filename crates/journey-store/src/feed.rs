//! The change feed's stored entries: each journey's latest change and why it happened.

use serde::{Deserialize, Serialize};

/// What made a journey's status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema, Deserialize)]
pub enum ChangeCause {
    /// A control command (declare, apply, lifecycle, request, delete). Its caller reads the
    /// outcome itself, so it need not react to the notification.
    Command,
    /// The engine on its own (scheduler: resume progress, pause expiry, schedule start and end,
    /// drain, timeouts) or ingest (events, profile upserts).
    Engine,
}

impl ChangeCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeCause::Command => "Command",
            ChangeCause::Engine => "Engine",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Command" => Some(ChangeCause::Command),
            "Engine" => Some(ChangeCause::Engine),
            _ => None,
        }
    }
}

/// One entry of the feed: the journey's latest change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedChange {
    pub key: String,
    pub revision: i64,
    pub cause: ChangeCause,
    /// The journey was deleted (a tombstone).
    pub deleted: bool,
}
