//! The lifecycle: what a user declares ([`JourneyState`]), what the engine reports ([`Phase`]),
//! why it moved ([`TransitionReason`]), and the one table of legal changes ([`table`]).
//!
//! The CRD's CEL rules are generated from the table ([`cel`]), the engine enforces it
//! ([`judge`]), and the controller's planner and `plan` read it; a parity test drives every pair
//! through all of them.

pub mod cel;
mod judge;
pub mod table;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use cel::{GeneratedRule, spec_transition_rules};
pub use judge::{Change, Refusal, Rule, engine_from, judge};
pub use table::{
    DEFINITION_FIELDS, LOCK_RULES, Lock, LockRule, TRANSITIONS, Transitions, change_allowed,
    transition_allowed, transition_message,
};

/// The lifecycle a user declares in `spec.state`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum JourneyState {
    /// Being designed; nothing runs and everything is editable.
    #[default]
    Draft,
    /// Live: profiles enter and move through the steps.
    Published,
    /// Temporarily halted as `spec.pause` describes; entry and exit rules and the global filter
    /// may be changed only in this state.
    Paused,
    /// Drain: no new entrances, profiles already inside finish, then the journey is Completed.
    Closed,
    /// Entrance, movement and delivery halt at once. Terminal: a stopped journey cannot be
    /// restarted.
    Stopped,
}

impl JourneyState {
    pub const ALL: [JourneyState; 5] = [
        JourneyState::Draft,
        JourneyState::Published,
        JourneyState::Paused,
        JourneyState::Closed,
        JourneyState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JourneyState::Draft => "Draft",
            JourneyState::Published => "Published",
            JourneyState::Paused => "Paused",
            JourneyState::Closed => "Closed",
            JourneyState::Stopped => "Stopped",
        }
    }

    /// Whether the journey has ever been published once it is in this state.
    pub fn is_published(self) -> bool {
        matches!(
            self,
            JourneyState::Published | JourneyState::Paused | JourneyState::Closed
        )
    }
}

impl fmt::Display for JourneyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the journey engine is really doing.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Phase {
    #[default]
    Draft,
    /// Published, waiting for `schedule.startAt`.
    Scheduled,
    Live,
    Paused,
    /// Resumed: fresh entrances are admitted, held profiles are being released.
    Resuming,
    /// Closed or past `schedule.endAt`: no new entrances, profiles inside finishing.
    Closing,
    Completed,
    Stopped,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Draft,
        Phase::Scheduled,
        Phase::Live,
        Phase::Paused,
        Phase::Resuming,
        Phase::Closing,
        Phase::Completed,
        Phase::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Draft => "Draft",
            Self::Scheduled => "Scheduled",
            Self::Live => "Live",
            Self::Paused => "Paused",
            Self::Resuming => "Resuming",
            Self::Closing => "Closing",
            Self::Completed => "Completed",
            Self::Stopped => "Stopped",
        }
    }

    /// Profiles inside move in this phase.
    pub fn moves(self) -> bool {
        matches!(
            self,
            Self::Live | Self::Paused | Self::Resuming | Self::Closing
        )
    }

    /// Fresh entrances are admitted in this phase.
    pub fn admits(self) -> bool {
        matches!(self, Self::Live | Self::Resuming)
    }

    /// Whether this phase is where a journey declared `state` comes to rest (the controller's
    /// Ready): Published rests in Live or Scheduled, or in Closing and Completed once
    /// `schedule.endAt` has passed.
    pub fn settles(self, state: JourneyState) -> bool {
        match state {
            JourneyState::Draft => self == Phase::Draft,
            JourneyState::Published => matches!(
                self,
                Phase::Live | Phase::Scheduled | Phase::Closing | Phase::Completed
            ),
            JourneyState::Paused => self == Phase::Paused,
            JourneyState::Closed => matches!(self, Phase::Closing | Phase::Completed),
            JourneyState::Stopped => self == Phase::Stopped,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a journey moved from one phase to another, as its status history and conditions show it.
/// A pause the user gave a reason for records that text instead ([`TransitionReason::Other`]).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TransitionReason {
    Published,
    /// `schedule.startAt` arrived.
    StartAt,
    /// `schedule.endAt` arrived.
    EndAt,
    Paused,
    Resumed,
    /// The pause reached `maxDuration` and `onExpiry: Resume` resumed it.
    PauseExpired,
    /// The pause reached `maxDuration` and `onExpiry: Stop` stopped it.
    StoppedByPauseExpiry,
    Closed,
    /// Closed while still a draft: completed at once.
    ClosedBeforePublish,
    AllHeldReleased,
    Drained,
    Stopped,
    /// An emergency hold paused the journey.
    EmergencyHold,
    /// The last emergency hold over a journey it had paused was released.
    HoldReleased,
    /// The reason a user gave a pause (`spec.pause.reason`).
    #[serde(untagged)]
    Other(String),
}

impl TransitionReason {
    pub const fn as_str(&self) -> &str {
        match self {
            Self::Published => "Published",
            Self::StartAt => "StartAt",
            Self::EndAt => "EndAt",
            Self::Paused => "Paused",
            Self::Resumed => "Resumed",
            Self::PauseExpired => "PauseExpired",
            Self::StoppedByPauseExpiry => "StoppedByPauseExpiry",
            Self::Closed => "Closed",
            Self::ClosedBeforePublish => "ClosedBeforePublish",
            Self::AllHeldReleased => "AllHeldReleased",
            Self::Drained => "Drained",
            Self::Stopped => "Stopped",
            Self::EmergencyHold => "EmergencyHold",
            Self::HoldReleased => "HoldReleased",
            Self::Other(text) => text.as_str(),
        }
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_reasons_keep_their_stored_spelling() {
        for reason in [
            TransitionReason::StoppedByPauseExpiry,
            TransitionReason::PauseExpired,
            TransitionReason::Other("maintenance window".into()),
        ] {
            let json = serde_json::to_string(&reason).expect("serialize");
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            let back: TransitionReason = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, reason);
        }
    }

    #[test]
    fn phases_and_states_keep_their_stored_spelling() {
        for p in Phase::ALL {
            assert_eq!(
                serde_json::to_string(&p).expect("serialize"),
                format!("\"{p}\"")
            );
        }
        for s in JourneyState::ALL {
            assert_eq!(
                serde_json::to_string(&s).expect("serialize"),
                format!("\"{s}\"")
            );
        }
    }
}
