//! One verdict on one change, from the table: what the engine answers and what the CRD's CEL
//! rules say, in the same words.

use super::table::{LOCK_RULES, Lock, TRANSITIONS, change_allowed, transition_allowed};
use super::{JourneyState, Phase};

/// A change to judge: the declared state before and after, and which guarded parts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: JourneyState,
    pub to: JourneyState,
    /// `entry` or `exit` differ.
    pub entry_exit: bool,
    /// `globalFilter` was added, changed or removed.
    pub global_filter: bool,
    /// Anything else the table freezes in Stopped (steps, schedule, pause, resume, timeout).
    pub other_definition: bool,
}

impl Change {
    /// A change of state only.
    pub fn state(from: JourneyState, to: JourneyState) -> Self {
        Change {
            from,
            to,
            entry_exit: false,
            global_filter: false,
            other_definition: false,
        }
    }

    fn touches(&self, lock: Lock) -> bool {
        match lock {
            Lock::StoppedFrozen => self.entry_exit || self.global_filter || self.other_definition,
            Lock::GlobalFilterNeedsPause => self.global_filter,
            Lock::EntryExitNeedPause => self.entry_exit,
        }
    }
}

/// Which rule of the table refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The `state` change is not in [`TRANSITIONS`].
    Transition,
    /// A part guarded by this lock changed when the lock forbids it.
    Lock(Lock),
}

/// A refused change: the rule and the message the CRD's CEL rule gives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    pub message: &'static str,
}

/// Judges a change as the CRD's CEL rules do, in their order (transitions, then locks), and
/// returns the first rule it breaks.
pub fn judge(change: &Change) -> Result<(), Refusal> {
    let (from, to) = (change.from, change.to);
    if !transition_allowed(from, to)
        && let Some(row) = TRANSITIONS.iter().find(|row| row.from == from)
    {
        return Err(Refusal {
            rule: Rule::Transition,
            message: row.message,
        });
    }
    for rule in LOCK_RULES {
        if change.touches(rule.lock) && !change_allowed(rule.lock, from, to) {
            return Err(Refusal {
                rule: Rule::Lock(rule.lock),
                message: rule.message,
            });
        }
    }
    Ok(())
}

/// The declared state the engine judges a change from, given where the journey is (`phase`) and
/// the state last declared to it. CEL judges spec against spec; the engine judges what it is
/// doing against what it is asked, so:
/// - a stopped journey is Stopped whatever was declared (a pause that expired with
///   `onExpiry: Stop` included);
/// - Closing and Completed are Closed (also when `schedule.endAt` closed a Published journey:
///   it can only be stopped now);
/// - Scheduled, Live and Resuming are Published, unless the declared state is still Paused (a
///   pause that expired with `onExpiry: Resume`), which the user may still change as a pause;
/// - re-declaring the state last declared is never a transition.
pub fn engine_from(phase: Phase, declared: JourneyState, to: JourneyState) -> JourneyState {
    match phase {
        Phase::Stopped => JourneyState::Stopped,
        _ if to == declared => declared,
        Phase::Draft => JourneyState::Draft,
        Phase::Paused => JourneyState::Paused,
        Phase::Closing | Phase::Completed => JourneyState::Closed,
        Phase::Scheduled | Phase::Live | Phase::Resuming => {
            if declared == JourneyState::Paused {
                JourneyState::Paused
            } else {
                JourneyState::Published
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JourneyState::*;

    #[test]
    fn a_refused_transition_carries_its_row_message() {
        let r = judge(&Change::state(Published, Draft)).expect_err("refused");
        assert_eq!(r.rule, Rule::Transition);
        assert!(
            r.message
                .starts_with("a published journey cannot return to Draft")
        );
        assert!(judge(&Change::state(Draft, Stopped)).is_ok());
    }

    #[test]
    fn locks_are_judged_after_the_transition() {
        let mut c = Change::state(Published, Published);
        c.entry_exit = true;
        assert_eq!(
            judge(&c).map_err(|r| r.rule),
            Err(Rule::Lock(Lock::EntryExitNeedPause))
        );
        c.to = Paused;
        assert!(judge(&c).is_ok());
        let mut stopped = Change::state(Stopped, Stopped);
        stopped.other_definition = true;
        assert_eq!(
            judge(&stopped).map_err(|r| r.rule),
            Err(Rule::Lock(Lock::StoppedFrozen))
        );
    }

    #[test]
    fn the_engine_judges_from_where_the_journey_is() {
        assert_eq!(engine_from(Phase::Completed, Published, Paused), Closed);
        assert_eq!(
            engine_from(Phase::Completed, Published, Published),
            Published
        );
        assert_eq!(engine_from(Phase::Live, Paused, Published), Paused);
        assert_eq!(engine_from(Phase::Stopped, Paused, Paused), Stopped);
        assert_eq!(engine_from(Phase::Resuming, Published, Draft), Published);
    }
}
