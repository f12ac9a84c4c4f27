//! The lifecycle story, told on one journey while the traffic keeps flowing: pause with Hold,
//! a global filter while paused, resume at a rate, an emergency `JourneyHold` over a label,
//! its release. Each stage acts, then waits (bounded) for the journey's real status, then
//! lingers `stage_seconds` so a human can follow. A refused step is reported and the story
//! goes on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use journey_operator::api::Journey;
use journey_operator::api::hold::JourneyHold;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::feed::DataPlane;

/// How long the story waits for a status before it says so and goes on.
const WAIT_LIMIT: Duration = Duration::from_secs(120);
/// How often the journey's status is read while waiting.
const POLL: Duration = Duration::from_secs(1);
const STAGES: usize = 5;
const HOLD_NAME: &str = "incident-4711";
const FILTER: &str = "profile.country == 'FR'";

/// What the story says: its lines (one per stage, the current one last, updated in place)
/// and notes for the log (printed once when stdout is not a terminal).
#[derive(Default)]
pub struct StoryView {
    pub lines: Vec<String>,
    pub notes: Vec<String>,
}

pub type SharedStory = Arc<Mutex<StoryView>>;

pub struct Story {
    pub journeys: Api<Journey>,
    pub holds: Api<JourneyHold>,
    pub data_plane: DataPlane,
    pub namespace: String,
    pub journey: String,
    pub stage_seconds: Duration,
    pub resume_rate: i32,
    pub view: SharedStory,
}

/// A snapshot of the story journey, as the lines quote it.
struct Seen {
    spec_state: String,
    phase: String,
    held: i64,
    excluded: i64,
    deliveries: String,
    released: Option<(i64, i64)>,
    held_condition: bool,
    generation_observed: bool,
}

impl Story {
    fn start_line(&self, line: String) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        // The log gets how the previous stage ended, then the new stage's first line.
        if let Some(last) = view.lines.last().cloned() {
            view.notes.push(format!("  → {last}"));
        }
        view.notes.push(line.clone());
        view.lines.push(line);
        let keep = STAGES + 2;
        if view.lines.len() > keep {
            let drop = view.lines.len() - keep;
            view.lines.drain(..drop);
        }
    }

    fn update_line(&self, line: String) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        match view.lines.last_mut() {
            Some(last) => *last = line,
            None => view.lines.push(line),
        }
    }

    fn note(&self, line: String) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        view.notes.push(line);
    }

    async fn seen(&self) -> Result<Seen, kube::Error> {
        let j = self.journeys.get(&self.journey).await?;
        let status = j.status.clone().unwrap_or_default();
        let counts = status.profiles.clone().unwrap_or_default();
        let deliveries = match self
            .data_plane
            .deliveries(&self.namespace, &self.journey)
            .await
        {
            Some(n) => n.to_string(),
            None => "?".into(),
        };
        Ok(Seen {
            spec_state: format!("{:?}", j.spec.state),
            phase: status
                .phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "-".into()),
            held: counts.held,
            excluded: counts.excluded,
            deliveries,
            released: status.resume.as_ref().map(|r| (r.released, r.total)),
            held_condition: status
                .conditions
                .iter()
                .any(|c| c.type_ == "Held" && c.status == "True"),
            generation_observed: status.observed_generation >= j.metadata.generation,
        })
    }

    /// Polls the journey until `done` holds (true) or [`WAIT_LIMIT`] passes (false), redrawing
    /// the stage's line from each snapshot.
    async fn wait_until(
        &self,
        describe: impl Fn(&Seen) -> String,
        done: impl Fn(&Seen) -> bool,
    ) -> bool {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            match self.seen().await {
                Ok(seen) => {
                    self.update_line(describe(&seen));
                    if done(&seen) {
                        return true;
                    }
                }
                Err(e) => self.update_line(format!("reading journey {}: {e}", self.journey)),
            }
            if Instant::now() >= deadline {
                self.note(format!(
                    "  (gave up waiting after {}s; the story goes on)",
                    WAIT_LIMIT.as_secs()
                ));
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The pacing delay: the line keeps following the status for `stage_seconds`.
    async fn linger(&self, describe: impl Fn(&Seen) -> String) {
        let until = Instant::now() + self.stage_seconds;
        while Instant::now() < until {
            if let Ok(seen) = self.seen().await {
                self.update_line(describe(&seen));
            }
            tokio::time::sleep(POLL.min(self.stage_seconds)).await;
        }
    }

    async fn patch(&self, patch: Value) -> Result<(), kube::Error> {
        self.journeys
            .patch(
                &self.journey,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map(|_| ())
    }

    /// Reports a refused step as the stage's line and in the log; the story goes on.
    fn refused(&self, stage: usize, what: &str, error: &kube::Error) {
        let line = format!("stage {stage}/{STAGES}: {what} was refused: {error}");
        self.update_line(line.clone());
        self.note(line);
    }

    pub async fn tell(self) {
        let name = self.journey.clone();
        self.start_line(format!(
            "stage 0/5: {name} is published; waiting for its first deliveries before the story starts"
        ));
        self.wait_until(
            |s| {
                format!(
                    "stage 0/5: {name} is {} — waiting for its first deliveries ({} so far)",
                    s.phase, s.deliveries
                )
            },
            |s| s.phase == "Live" && s.deliveries != "0" && s.deliveries != "?",
        )
        .await;

        self.pause().await;
        self.filter().await;
        self.resume().await;
        self.hold().await;
        self.release().await;
        self.start_line(format!(
            "story done: {name} is back to Live; the traffic goes on (Ctrl-C to stop)"
        ));
    }

    async fn pause(&self) {
        let name = &self.journey;
        self.start_line(format!(
            "stage 1/5: pausing {name} with Hold (reason \"demo: copy review\")"
        ));
        let patch = json!({"spec": {"state": "Paused", "pause": {"mode": "Hold", "reason": "demo: copy review"}}});
        if let Err(e) = self.patch(patch).await {
            self.refused(1, "the pause", &e);
            return;
        }
        let describe = |s: &Seen| {
            format!(
                "stage 1/5: paused with Hold (\"demo: copy review\"): {} — held {} at their next message, deliveries stay at {}",
                s.phase, s.held, s.deliveries
            )
        };
        self.wait_until(describe, |s| s.phase == "Paused").await;
        self.linger(describe).await;
    }

    async fn filter(&self) {
        self.start_line(format!(
            "stage 2/5: adding the global filter {FILTER} while paused"
        ));
        if let Err(e) = self.patch(json!({"spec": {"globalFilter": FILTER}})).await {
            self.refused(2, "the global filter", &e);
            return;
        }
        let describe = |s: &Seen| {
            format!(
                "stage 2/5: global filter {FILTER} while {}: profiles it matches are excluded at their next action (excluded {}), held {}",
                s.phase, s.excluded, s.held
            )
        };
        self.wait_until(describe, |s| s.generation_observed).await;
        self.linger(describe).await;
    }

    async fn resume(&self) {
        let rate = self.resume_rate;
        self.start_line(format!("stage 3/5: resuming at {rate} profiles/s"));
        let patch = json!({"spec": {"state": "Published", "resume": {"rate": rate}}});
        if let Err(e) = self.patch(patch).await {
            self.refused(3, "the resume", &e);
            return;
        }
        let describe = move |s: &Seen| {
            let released = s
                .released
                .map(|(r, t)| format!("released {r}/{t}"))
                .unwrap_or_else(|| "nothing to release".into());
            format!(
                "stage 3/5: resuming at {rate} profiles/s: {} — {released}, excluded {}, deliveries {}",
                s.phase, s.excluded, s.deliveries
            )
        };
        self.wait_until(describe, |s| {
            s.generation_observed && (s.phase == "Resuming" || s.phase == "Live")
        })
        .await;
        self.wait_until(describe, |s| s.phase == "Live").await;
        self.linger(describe).await;
    }

    async fn hold(&self) {
        let name = &self.journey;
        self.start_line(format!(
            "stage 4/5: labelling {name} team: growth and creating JourneyHold {HOLD_NAME} over team: growth"
        ));
        if let Err(e) = self
            .patch(json!({"metadata": {"labels": {"team": "growth"}}}))
            .await
        {
            self.refused(4, "the label", &e);
            return;
        }
        let hold: JourneyHold = match serde_json::from_value(json!({
            "apiVersion": "journey.dev/v1alpha1",
            "kind": "JourneyHold",
            "metadata": {"name": HOLD_NAME},
            "spec": {
                "selector": {"matchLabels": {"team": "growth"}},
                "mode": "Hold",
                "reason": "demo: incident 4711",
                "duration": "2m",
            },
        })) {
            Ok(hold) => hold,
            Err(e) => {
                self.update_line(format!("stage 4/5: building the JourneyHold: {e}"));
                return;
            }
        };
        // A hold left by an earlier run on the same cluster would make the create conflict.
        let _ = self.holds.delete(HOLD_NAME, &DeleteParams::default()).await;
        if let Err(e) = self.holds.create(&PostParams::default(), &hold).await {
            self.refused(4, "the JourneyHold", &e);
            return;
        }
        let describe = |s: &Seen| {
            format!(
                "stage 4/5: JourneyHold {HOLD_NAME} (\"demo: incident 4711\", 2m): {name} is {}{} while its spec says {} — held {}",
                s.phase,
                if s.held_condition { ", Held=True" } else { "" },
                s.spec_state,
                s.held
            )
        };
        self.wait_until(describe, |s| s.phase == "Paused" && s.held_condition)
            .await;
        self.linger(describe).await;
    }

    async fn release(&self) {
        let name = &self.journey;
        self.start_line(format!(
            "stage 5/5: releasing the hold (deleting JourneyHold {HOLD_NAME})"
        ));
        if let Err(e) = self.holds.delete(HOLD_NAME, &DeleteParams::default()).await {
            self.refused(5, "deleting the JourneyHold", &e);
            return;
        }
        let describe = |s: &Seen| {
            let released = s
                .released
                .map(|(r, t)| format!(", released {r}/{t}"))
                .unwrap_or_default();
            format!(
                "stage 5/5: hold released: {name} is {}{}{released}, deliveries {}",
                s.phase,
                if s.held_condition { " (Held=True)" } else { "" },
                s.deliveries
            )
        };
        self.wait_until(describe, |s| {
            !s.held_condition && (s.phase == "Resuming" || s.phase == "Live")
        })
        .await;
        self.wait_until(describe, |s| s.phase == "Live").await;
        self.linger(describe).await;
    }
}
