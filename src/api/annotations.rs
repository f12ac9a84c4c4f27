//! The `journey.dev/` annotations. The requests ask for one-off actions: each carries an opaque
//! token; the controller handles a token once and echoes it in status. The others record who
//! changed what, written by admission (`manifests/admission/lifecycle-actor.yaml`).

/// Run now: one audience read (seed 001).
pub const RUN_REQUESTED_AT: &str = "journey.dev/run-requested-at";
/// Full run: read the whole audience, ignoring incremental state.
pub const FULL_RUN_REQUESTED_AT: &str = "journey.dev/full-run-requested-at";
/// Restart: every contact begins again (seed 003).
pub const RESTART_REQUESTED_AT: &str = "journey.dev/restart-requested-at";

/// Who made the last lifecycle change: the username the apiserver authenticated for the write
/// that created the journey, changed `spec.state`, `spec.pause` or `spec.globalFilter`, or set
/// a request annotation. Written by the MutatingAdmissionPolicy of
/// `manifests/admission/lifecycle-actor.yaml`, which overwrites any value a request carries;
/// the controller copies it into `status.pause.actor` and the history.
pub const LIFECYCLE_CHANGED_BY: &str = "journey.dev/lifecycle-changed-by";
/// Why: a pull-request URL or a commit, set by whoever makes the change and kept as it is (the
/// admission policy does not touch it). With Argo CD the actor is Argo CD's own identity, and
/// this names the commit.
pub const CHANGE_REF: &str = "journey.dev/change-ref";
/// Who created a hold (`journeyholds.journey.dev`, `clusterjourneyholds.journey.dev`): stamped
/// at creation by the same admission manifest and kept through later writes.
pub const CREATED_BY: &str = "journey.dev/created-by";
