//! Annotations that request one-off actions. Each carries an opaque token; the controller
//! handles a token once and echoes it in status.

/// Run now: one audience read (seed 001).
pub const RUN_REQUESTED_AT: &str = "journey.dev/run-requested-at";
/// Full run: read the whole audience, ignoring incremental state.
pub const FULL_RUN_REQUESTED_AT: &str = "journey.dev/full-run-requested-at";
/// Restart: every contact begins again (seed 003).
pub const RESTART_REQUESTED_AT: &str = "journey.dev/restart-requested-at";

/// Who created a `JourneyHold` or `ClusterJourneyHold`: stamped by the admission policy in
/// `manifests/admission/`, never believed from the request.
pub const CREATED_BY: &str = "journey.dev/created-by";
