//! `xtask demo`: feeds simulated profiles and events into the engine's data plane so the
//! example journeys visibly move, tells the lifecycle story on one journey (pause, filter,
//! resume, emergency hold, release) and prints a live status table until interrupted.

mod feed;
mod story;
mod table;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use journey_operator::api::Journey;
use journey_operator::api::hold::JourneyHold;

use feed::{DataPlane, Lcg, simulated_batch};
use story::{SharedStory, Story, StoryView};
use table::{Row, Screen, render};

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub namespace: String,
    /// Base URL of the data plane, e.g. http://127.0.0.1:8090
    pub data_plane: String,
    pub token_file: PathBuf,
    pub interval: Duration,
    /// Events posted per interval.
    pub events_per_tick: usize,
    /// The journey the lifecycle story is told on; `None`: no story, only traffic.
    pub story_journey: Option<String>,
    /// The pacing delay of each story stage, once its status is reached.
    pub stage_seconds: Duration,
    /// `spec.resume.rate` of the story's resume.
    pub resume_rate: i32,
    /// When stdout is not a terminal, the table is printed this often.
    pub log_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Token(#[from] journey_operator::dataplane::DataPlaneError),
    #[error("talking to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("talking to the data plane: {0}")]
    Http(#[from] reqwest::Error),
}

/// Run now (seed 001) for every audience-read journey, through its annotation, once the
/// simulated audience exists.
async fn request_runs(
    journeys: &Api<Journey>,
    token: u64,
    view: &SharedStory,
) -> Result<(), DemoError> {
    for j in journeys.list(&ListParams::default()).await?.items {
        let reads = j
            .spec
            .entry
            .audience
            .as_ref()
            .is_some_and(|a| a.mode == journey_operator::api::journey::AudienceMode::Read);
        if reads {
            let patch = json!({"metadata": {"annotations": {journey_operator::api::annotations::RUN_REQUESTED_AT: format!("demo-{token}")}}});
            journeys
                .patch(
                    &j.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
            view.notes.push(format!(
                "requested a run of {} (journey.dev/run-requested-at)",
                j.name_any()
            ));
        }
    }
    Ok(())
}

pub async fn run(config: DemoConfig) -> Result<(), DemoError> {
    let token = journey_operator::dataplane::read_token_file(&config.token_file)?;
    let data_plane = DataPlane::new(&config.data_plane, token)?;
    let client = Client::try_default().await?;
    let journeys: Api<Journey> = Api::namespaced(client.clone(), &config.namespace);
    let holds: Api<JourneyHold> = Api::namespaced(client, &config.namespace);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let mut rng = Lcg(seed);
    let view: SharedStory = Arc::new(Mutex::new(StoryView::default()));
    let mut screen = Screen::new(config.log_every);
    let mut posted: u64 = 0;
    let mut requested_runs = false;
    let mut story = config.story_journey.clone().map(|journey| Story {
        journeys: journeys.clone(),
        holds,
        data_plane: data_plane.clone(),
        namespace: config.namespace.clone(),
        journey,
        stage_seconds: config.stage_seconds,
        resume_rate: config.resume_rate,
        view: view.clone(),
    });
    let mut story_task = None;
    loop {
        let batch = simulated_batch(&mut rng, config.events_per_tick);
        posted += data_plane.post(&batch).await;

        if !requested_runs && posted > 0 {
            requested_runs = true;
            request_runs(&journeys, seed, &view).await?;
            if let Some(story) = story.take() {
                story_task = Some(tokio::spawn(story.tell()));
            }
        }

        let mut rows = Vec::new();
        match journeys.list(&ListParams::default()).await {
            Ok(list) => {
                for j in list.items {
                    let deliveries = data_plane
                        .deliveries(&config.namespace, &j.name_any())
                        .await;
                    rows.push(Row::from_journey(&j, deliveries));
                }
            }
            Err(e) => {
                let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
                view.notes.push(format!("listing journeys: {e}"));
            }
        }
        let (story_lines, notes) = {
            let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
            (view.lines.clone(), std::mem::take(&mut view.notes))
        };
        for note in &notes {
            screen.note(note);
        }
        // On a terminal the story's lines head the frame; in a log they were printed as notes
        // when they started, and the frame repeats only the current one.
        let header = if screen.is_terminal() {
            story_lines
        } else {
            story_lines.last().cloned().into_iter().collect()
        };
        screen.show(&render(&header, posted, &rows));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                if let Some(task) = story_task { task.abort(); }
                return Ok(());
            }
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}
