//! A small process around the engine, used by the crash-safety test (it is
//! SIGKILLed mid-way and restarted on the same SQLite file).
//!
//! Usage: `journey-engine-worker <command> <db> [n]` with commands
//! `setup-held` (n profiles held at an action of journey `crash/resume`),
//! `resume` (resume it and run until Live and idle), `setup-run` (n profiles
//! and journey `crash/run`), `run` (request a run with a fixed token and run
//! until the read has finished).

use std::process::ExitCode;
use std::sync::Arc;

use journey_operator::engine::{
    Definition, DesiredLifecycle, Engine, EngineConfig, PauseOptions, Phase, RequestKind,
    SqliteStore, SystemClock,
};
use serde_json::json;

type E = Engine<SqliteStore>;

fn engine(db: &str) -> journey_operator::engine::Result<E> {
    let release_batch = std::env::var("JOURNEY_RELEASE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let batch_size = std::env::var("JOURNEY_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    Engine::new(
        SqliteStore::open(db)?,
        Arc::new(SystemClock),
        EngineConfig {
            release_batch,
            batch_size,
            read_batch: batch_size,
            ..EngineConfig::default()
        },
    )
}

fn profiles(e: &E, n: usize) -> journey_operator::engine::Result<()> {
    let mut chunk = Vec::new();
    for i in 0..n {
        chunk.push((format!("p{i:07}"), json!({"n": i})));
        if chunk.len() == 10_000 {
            e.upsert_profiles_blocking(std::mem::take(&mut chunk))?;
        }
    }
    e.upsert_profiles_blocking(chunk)
}

fn spec(rate: u64) -> journey_operator::engine::Result<Definition> {
    Definition::from_json(json!({
        "entry": {"audience": {"condition": "true", "mode": "Read", "schedule": {"cron": "0 0 1 1 *"}}},
        "resume": {"rate": rate},
        "steps": [
            {"id": "hello", "action": {"channel": "email", "message": {"subject": "hello"}}},
            {"id": "wait", "wait": {"duration": "1h"}},
            {"id": "followup", "action": {"channel": "email", "message": {"subject": "followup"}}}
        ]
    }))
}

fn until_idle(
    e: &E,
    key: &str,
    done: impl Fn(&E) -> journey_operator::engine::Result<bool>,
) -> journey_operator::engine::Result<()> {
    loop {
        let r = e.tick()?;
        if r.is_idle() && done(e)? {
            return Ok(());
        }
        if r.is_idle() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = key;
    }
}

fn run(cmd: &str, db: &str, n: usize) -> journey_operator::engine::Result<()> {
    let e = engine(db)?;
    match cmd {
        "setup-held" => {
            profiles(&e, n)?;
            let key = "crash/resume";
            e.apply_definition_blocking(key, &spec(0)?)?;
            e.set_lifecycle_blocking(key, DesiredLifecycle::Published)?;
            e.request_blocking(key, RequestKind::FullRun, "setup")?;
            loop {
                e.step_journey_housekeeping(key)?;
                let runs = e.run_history_blocking(key, 1)?;
                if runs.first().is_some_and(|r| r.outcome == "Succeeded") {
                    break;
                }
            }
            e.set_lifecycle_blocking(key, DesiredLifecycle::Paused(PauseOptions::default()))?;
            e.run_until_idle()?;
            let s = e
                .status_blocking(key)?
                .map(|s| s.profiles.held)
                .unwrap_or(0);
            println!("held {s}");
        }
        "resume" => {
            let key = "crash/resume";
            e.set_lifecycle_blocking(key, DesiredLifecycle::Published)?;
            until_idle(&e, key, |e| {
                Ok(e.status_blocking(key)?
                    .is_some_and(|s| s.phase == Phase::Live))
            })?;
        }
        "setup-run" => {
            profiles(&e, n)?;
            let key = "crash/run";
            e.apply_definition_blocking(key, &spec(0)?)?;
            e.set_lifecycle_blocking(key, DesiredLifecycle::Published)?;
        }
        "run" => {
            let key = "crash/run";
            let out = e.request_blocking(key, RequestKind::RunNow, "crash-run-1")?;
            println!("request: {out:?}");
            until_idle(&e, key, |e| {
                let runs = e.run_history_blocking(key, 1)?;
                Ok(runs.first().is_some_and(|r| r.outcome == "Succeeded"))
            })?;
        }
        other => {
            eprintln!("unknown command {other}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: journey-engine-worker <setup-held|resume|setup-run|run> <db> [n]");
        return ExitCode::from(2);
    }
    let n = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    match run(&args[1], &args[2], n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
