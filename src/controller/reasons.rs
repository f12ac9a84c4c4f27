//! The one vocabulary of reasons: the same string is a condition reason, an event reason and a
//! metric label. Each is documented in the README.

use journey_model::lifecycle::TransitionReason;

// Stalled: the user must act.
pub const INVALID_DEFINITION: &str = "InvalidDefinition";
pub const JOURNEY_STOPPED: &str = "JourneyStopped";
pub const CHANGE_REQUIRES_PAUSE: &str = "ChangeRequiresPause";
pub const ILLEGAL_TRANSITION: &str = "IllegalTransition";
// Reconciling / transient.
pub const ENGINE_UNAVAILABLE: &str = "EngineUnavailable";
// Reconcile failures (events and the metric label).
pub const STATUS_WRITE_FAILED: &str = "StatusWriteFailed";
pub const FINALIZER_FAILED: &str = "FinalizerFailed";
pub const CACHE_UNREADABLE: &str = "CacheUnreadable";
pub const RECONCILE_PANICKED: &str = "ReconcilePanicked";
pub const APPLYING: &str = "Applying";
pub const RESUMING: &str = "Resuming";
// Ready.
pub const RECONCILED: &str = "Reconciled";
pub const NOT_RECONCILED: &str = "NotReconciled";
pub const NOT_STALLED: &str = "NotStalled";
pub const NOT_RECONCILING: &str = "NotReconciling";
// Domain conditions.
pub const PUBLISHED: &str = "Published";
pub const DRAFT: &str = "Draft";
pub const SCHEDULED: &str = "Scheduled";
pub const PAUSED: &str = "Paused";
pub const NOT_PAUSED: &str = "NotPaused";
pub const PAUSE_EXPIRED: &str = TransitionReason::PauseExpired.as_str();
pub const RELEASING_HELD_PROFILES: &str = "ReleasingHeldProfiles";
pub const NOT_RESUMING: &str = "NotResuming";
pub const DRAINED: &str = "Drained";
pub const NOT_COMPLETED: &str = "NotCompleted";
pub const STOPPED: &str = "Stopped";
pub const STOPPED_BY_PAUSE_EXPIRY: &str = TransitionReason::StoppedByPauseExpiry.as_str();
pub const NOT_STOPPED: &str = "NotStopped";
/// `Held`: an emergency hold keeps the journey paused.
pub const EMERGENCY_HOLD: &str = TransitionReason::EmergencyHold.as_str();
pub const NOT_HELD: &str = "NotHeld";
/// An event on a journey: the last hold over it is gone (deleted or expired).
pub const HOLD_RELEASED: &str = TransitionReason::HoldReleased.as_str();
/// Events on a hold: it expired, or it was deleted, and released its journeys.
pub const HOLD_EXPIRED: &str = "Expired";
pub const HOLD_DELETED: &str = "Released";
// Events only.
pub const RESTART_NOT_ALLOWED: &str = "RestartNotAllowed";
pub const RUN_REQUESTED: &str = "RunRequested";
/// A Warning event on the journey: its webhook deliveries to a destination are not sent
/// because the destination's credentials file cannot be read (retried with backoff).
pub const WEBHOOK_CREDENTIALS_UNREADABLE: &str = "WebhookCredentialsUnreadable";
pub const RUN_DEFERRED: &str = "RunDeferred";
pub const RUN_REFUSED: &str = "RunRefused";
pub const RESTARTED: &str = "Restarted";
pub const DELETED: &str = "Deleted";
pub const ORPHANED: &str = "Orphaned";
