//! The lifecycle transition table: the one place that says which `spec.state` changes are legal
//! and which parts of a journey are locked in which state. The CRD's CEL rules, the engine, the
//! controller and the `plan` command all derive their behaviour from these tables.

use super::JourneyState;

/// One row of the transition table: from `from`, the journey may move to any of `to`.
/// Staying in the same state is always allowed and is not listed.
pub struct Transitions {
    pub from: JourneyState,
    pub to: &'static [JourneyState],
    /// What the apiserver tells a user who tries anything else.
    pub message: &'static str,
}

/// Legal `spec.state` changes. Creating a journey directly in any state is allowed (restoring
/// from Git needs it): these rules only judge updates.
pub const TRANSITIONS: &[Transitions] = &[
    Transitions {
        from: JourneyState::Draft,
        to: &[
            JourneyState::Published,
            JourneyState::Paused,
            JourneyState::Closed,
            JourneyState::Stopped,
        ],
        message: "",
    },
    Transitions {
        from: JourneyState::Published,
        to: &[
            JourneyState::Paused,
            JourneyState::Closed,
            JourneyState::Stopped,
        ],
        message: "a published journey cannot return to Draft; pause it, close it, or copy it under a new name",
    },
    Transitions {
        from: JourneyState::Paused,
        to: &[
            JourneyState::Published,
            JourneyState::Closed,
            JourneyState::Stopped,
        ],
        message: "a published journey cannot return to Draft; set state Published to resume it, Closed to drain it, or copy it under a new name",
    },
    Transitions {
        from: JourneyState::Closed,
        to: &[JourneyState::Stopped],
        message: "a closed journey can only be stopped; to run it again, copy it under a new name",
    },
    Transitions {
        from: JourneyState::Stopped,
        to: &[],
        message: "a stopped journey cannot be restarted; copy it under a new name",
    },
];

/// Whether `spec.state` may change from `from` to `to`.
pub fn transition_allowed(from: JourneyState, to: JourneyState) -> bool {
    from == to
        || TRANSITIONS
            .iter()
            .any(|row| row.from == from && row.to.contains(&to))
}

/// The message of the rule that rejects `from → to`, if it is rejected.
pub fn transition_message(from: JourneyState, to: JourneyState) -> Option<&'static str> {
    if transition_allowed(from, to) {
        return None;
    }
    TRANSITIONS
        .iter()
        .find(|row| row.from == from)
        .map(|row| row.message)
}

/// A part of the spec that is locked in some states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Everything but `deletionPolicy` is frozen once the journey is Stopped.
    StoppedFrozen,
    /// `globalFilter` may be added, changed or removed only when the new state is Paused.
    GlobalFilterNeedsPause,
    /// `entry` and `exit` are locked once published; change them together with (or after)
    /// `state: Paused`.
    EntryExitNeedPause,
}

/// The spec fields a rule guards, as they are named in the YAML.
pub struct LockRule {
    pub lock: Lock,
    pub fields: &'static [&'static str],
    pub message: &'static str,
}

/// Every spec field except `state` and `deletionPolicy`: what a stopped journey freezes.
pub const DEFINITION_FIELDS: &[&str] = &[
    "pause",
    "globalFilter",
    "resume",
    "schedule",
    "entry",
    "exit",
    "timeout",
    "steps",
];

pub const LOCK_RULES: &[LockRule] = &[
    LockRule {
        lock: Lock::StoppedFrozen,
        fields: DEFINITION_FIELDS,
        message: "a stopped journey cannot be changed; copy it under a new name",
    },
    LockRule {
        lock: Lock::GlobalFilterNeedsPause,
        fields: &["globalFilter"],
        message: "globalFilter can be added, changed or removed only while the journey is Paused: set state Paused in the same change",
    },
    LockRule {
        lock: Lock::EntryExitNeedPause,
        fields: &["entry", "exit"],
        message: "entry and exit rules are locked once a journey is published: pause it first (state Paused in the same change is allowed)",
    },
];

/// Whether a change of a field guarded by `lock` is allowed for `from → to`.
pub fn change_allowed(lock: Lock, from: JourneyState, to: JourneyState) -> bool {
    match lock {
        Lock::StoppedFrozen => from != JourneyState::Stopped,
        Lock::GlobalFilterNeedsPause => to == JourneyState::Paused,
        Lock::EntryExitNeedPause => from == JourneyState::Draft || to == JourneyState::Paused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_is_terminal_and_draft_is_left_for_good() {
        for to in JourneyState::ALL {
            assert_eq!(
                transition_allowed(JourneyState::Stopped, to),
                to == JourneyState::Stopped
            );
        }
        for from in [
            JourneyState::Published,
            JourneyState::Paused,
            JourneyState::Closed,
        ] {
            assert!(!transition_allowed(from, JourneyState::Draft));
        }
        assert!(transition_allowed(
            JourneyState::Closed,
            JourneyState::Stopped
        ));
        assert!(!transition_allowed(
            JourneyState::Closed,
            JourneyState::Published
        ));
    }

    #[test]
    fn every_rejected_transition_has_a_message() {
        for from in JourneyState::ALL {
            for to in JourneyState::ALL {
                if !transition_allowed(from, to) {
                    assert!(!transition_message(from, to).unwrap_or("").is_empty());
                }
            }
        }
    }

    #[test]
    fn locks_follow_the_seeds() {
        use JourneyState::*;
        assert!(change_allowed(
            Lock::GlobalFilterNeedsPause,
            Published,
            Paused
        ));
        assert!(!change_allowed(
            Lock::GlobalFilterNeedsPause,
            Paused,
            Published
        ));
        assert!(change_allowed(Lock::EntryExitNeedPause, Draft, Published));
        assert!(change_allowed(Lock::EntryExitNeedPause, Published, Paused));
        assert!(!change_allowed(
            Lock::EntryExitNeedPause,
            Published,
            Published
        ));
        assert!(!change_allowed(Lock::EntryExitNeedPause, Paused, Published));
        assert!(!change_allowed(Lock::StoppedFrozen, Stopped, Stopped));
    }
}
