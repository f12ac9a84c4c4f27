//! Benchmarks of the journey engine on SQLite (issue 4, "Performance").
//!
//! `CARGO_TARGET_DIR=/work/target-engine cargo bench --bench engine -- [--n 1000000] [--held 10000000] [--runs 3] [--only 1,2,3,4,5]`
//!
//! Prints the machine line and, per benchmark, every run and the median.

#[path = "support/machine.rs"]
mod machine;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use journey_operator::engine::clock::MINUTE;
use journey_operator::engine::{
    Clock, Definition, DesiredLifecycle, Engine, EngineConfig, PauseOptions, Phase, RequestKind,
    SqliteStore, Store, SystemClock, VirtualClock,
};
use serde_json::{Value, json};

type E = Engine<SqliteStore>;

struct Args {
    /// Reuse a bench3 template directory (holding `bench.db` with `held` held profiles).
    template: Option<String>,
    n: usize,
    held: usize,
    runs: usize,
    only: Vec<u32>,
}

fn args() -> Args {
    let mut a = Args {
        template: None,
        n: 1_000_000,
        held: 10_000_000,
        runs: 3,
        only: vec![1, 2, 3, 4, 5, 6],
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--n" => a.n = val.parse().unwrap_or(a.n),
            "--template" => a.template = Some(val.clone()),
            "--held" => a.held = val.parse().unwrap_or(a.held),
            "--runs" => a.runs = val.parse().unwrap_or(a.runs),
            "--only" => a.only = val.split(',').filter_map(|x| x.parse().ok()).collect(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn engine(dir: &std::path::Path, clock: Arc<dyn Clock>) -> E {
    let store = SqliteStore::open(dir.join("bench.db")).expect("open");
    Engine::new(store, clock, EngineConfig::default()).expect("engine")
}

fn profiles(e: &E, n: usize, prefix: &str, attrs: impl Fn(usize) -> Value) {
    let mut chunk = Vec::with_capacity(50_000);
    for i in 0..n {
        chunk.push((format!("{prefix}{i:08}"), attrs(i)));
        if chunk.len() == 50_000 {
            e.upsert_profiles_blocking(std::mem::take(&mut chunk))
                .expect("profiles");
        }
    }
    e.upsert_profiles_blocking(chunk).expect("profiles");
}

/// Reads the whole audience into enrollments (housekeeping only: nobody moves).
fn read_all(e: &E, key: &str) {
    e.request_blocking(key, RequestKind::FullRun, "bench")
        .expect("run");
    loop {
        e.step_journey_housekeeping(key).expect("read");
        let r = e.run_history_blocking(key, 1).expect("runs");
        if r.first().is_some_and(|r| r.outcome == "Succeeded") {
            break;
        }
    }
}

fn action_first_read(rate: u64) -> Definition {
    Definition::from_json(json!({
        "entry": {"audience": {"condition": "true", "mode": "Read", "schedule": {"cron": "0 0 1 1 *"}}},
        "resume": {"rate": rate},
        "steps": [
            {"id": "hello", "action": {"channel": "email", "message": {"subject": "hello"}}},
            {"id": "wait", "wait": {"duration": "1h"}}
        ]
    }))
    .expect("definition")
}

/// n profiles held at an action step.
fn setup_held(e: &E, n: usize) -> Duration {
    let t = Instant::now();
    profiles(e, n, "p", |i| json!({"n": i}));
    e.apply_definition_blocking("b/held", &action_first_read(0))
        .expect("apply");
    e.set_lifecycle_blocking("b/held", DesiredLifecycle::Published)
        .expect("publish");
    read_all(e, "b/held");
    e.set_lifecycle_blocking("b/held", DesiredLifecycle::Paused(PauseOptions::default()))
        .expect("pause");
    e.run_until_idle().expect("hold");
    let held = e
        .status_blocking("b/held")
        .expect("status")
        .map(|s| s.profiles.held);
    assert_eq!(held, Some(n as i64));
    t.elapsed()
}

/// Resume unthrottled; returns (release seconds, seconds until all went
/// through their action; 0 when `through_action` is false).
fn resume_all(e: &E, n: usize, through_action: bool) -> (f64, f64) {
    let t = Instant::now();
    e.set_lifecycle_blocking("b/held", DesiredLifecycle::Published)
        .expect("resume");
    loop {
        e.step_journey_housekeeping("b/held").expect("release");
        let s = e
            .status_blocking("b/held")
            .expect("status")
            .expect("exists");
        if s.phase == Phase::Live {
            break;
        }
    }
    let release = t.elapsed().as_secs_f64();
    if !through_action {
        return (release, 0.0);
    }
    e.run_until_idle().expect("advance");
    let all = t.elapsed().as_secs_f64();
    let d = e
        .store()
        .read(|tx| {
            let id = tx.journey_for_update("b/held")?.map(|r| r.id).unwrap_or(0);
            tx.count_deliveries(id)
        })
        .expect("count");
    assert_eq!(d, n as i64);
    (release, all)
}

/// Builds a database with `n` held profiles once; returns its directory and the setup time.
fn held_template(n: usize) -> (tempfile::TempDir, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(dir.path(), Arc::new(VirtualClock::at_default_epoch()));
    let t = setup_held(&e, n);
    drop(e); // closes both connections: WAL checkpointed into the main file
    (dir, t)
}

/// A private copy of the template for one run (same starting state every run).
fn copy_of(template: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["bench.db", "bench.db-wal"] {
        if template.join(f).exists() {
            std::fs::copy(template.join(f), dir.path().join(f)).expect("copy");
        }
    }
    dir
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    ["bench.db", "bench.db-wal", "bench.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn bench1(a: &Args) {
    let (mut rates, mut alls) = (Vec::new(), Vec::new());
    let (template, setup) = held_template(a.n);
    println!(
        "  bench1 setup (once, copied per run): {:.1}s",
        setup.as_secs_f64()
    );
    for run in 0..a.runs {
        let dir = copy_of(template.path());
        let e = engine(dir.path(), Arc::new(VirtualClock::at_default_epoch()));
        let (release, all) = resume_all(&e, a.n, true);
        let r = a.n as f64 / release;
        let d = a.n as f64 / all;
        println!(
            "  bench1 run {run}: released {} in {release:.2}s = {r:.0} profiles/s; all through their action after {all:.2}s = {d:.0} profiles/s",
            a.n
        );
        rates.push(r);
        alls.push(d);
    }
    println!(
        "bench1 resume {} held (rate 0): median {:.0} profiles released/s (target >= 100000); median {:.0} profiles/s released and through their action",
        a.n,
        median(rates),
        median(alls)
    );
}

fn bench2(a: &Args) {
    let (mut steps, mut dels) = (Vec::new(), Vec::new());
    for run in 0..a.runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = VirtualClock::at_default_epoch();
        let e = engine(dir.path(), Arc::new(clock.clone()));
        profiles(&e, a.n, "p", |i| json!({"n": i}));
        let def = Definition::from_json(json!({
            "entry": {"audience": {"condition": "true", "mode": "Read", "schedule": {"cron": "0 0 1 1 *"}}},
            "steps": [
                {"id": "wait", "wait": {"duration": "1m"}},
                {"id": "cond", "condition": {"branches": [{"when": "profile.n % 2 == 0", "next": "even"}], "otherwise": "odd"}},
                {"id": "even", "action": {"channel": "email", "message": {"subject": "even"}}, "next": "end"},
                {"id": "odd", "action": {"channel": "sms", "message": {"body": "odd"}}, "next": "end"},
                {"id": "end", "exit": {}}
            ]
        }))
        .expect("definition");
        e.apply_definition_blocking("b/flow", &def).expect("apply");
        e.set_lifecycle_blocking("b/flow", DesiredLifecycle::Published)
            .expect("publish");
        read_all(&e, "b/flow");
        e.run_until_idle().expect("into wait");
        clock.advance_ms(MINUTE);
        let t = Instant::now();
        let r = e.run_until_idle().expect("advance");
        let secs = t.elapsed().as_secs_f64();
        // wait -> cond, cond -> action, action -> exit step: 3 transitions per profile
        let s = r.advanced as f64 / secs;
        let d = r.deliveries as f64 / secs;
        println!(
            "  bench2 run {run}: {} profile-steps, {} deliveries in {secs:.2}s = {s:.0} profile-steps/s, {d:.0} deliveries/s",
            r.advanced, r.deliveries
        );
        steps.push(s);
        dels.push(d);
    }
    println!(
        "bench2 advance {} profiles wait->condition->action: median {:.0} profile-steps/s (target >= 100000), {:.0} deliveries/s",
        a.n,
        median(steps),
        median(dels)
    );
}

/// A 1 KB email template that reads the profile, the journey and the delivery's key.
fn kilobyte_template() -> Value {
    let para = "Your basket is still waiting: we kept it for you, and the items in it are still in stock. ";
    let body = format!(
        "<p>Hello {{{{ profile.first_name }}}},</p><p>{}</p><p>{{{{ journey.name }}}} · {{{{ delivery.idempotencyKey }}}}</p>",
        para.repeat(10)
    );
    json!({"subject": "{{ profile.first_name }}, your basket", "html": body, "to": "{{ profile.email }}"})
}

/// One run: `n` profiles through wait -> action with `message`; deliveries recorded per second.
fn deliveries_per_second(n: usize, message: Value) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = VirtualClock::at_default_epoch();
    let e = engine(dir.path(), Arc::new(clock.clone()));
    profiles(
        &e,
        n,
        "p",
        |i| json!({"first_name": format!("Name{i}"), "email": format!("p{i}@example.com")}),
    );
    let def = Definition::from_json(json!({
        "entry": {"audience": {"condition": "true", "mode": "Read", "schedule": {"cron": "0 0 1 1 *"}}},
        "steps": [
            {"id": "wait", "wait": {"duration": "1m"}},
            {"id": "mail", "action": {"channel": "email", "message": message}}
        ]
    }))
    .expect("definition");
    e.apply_definition_blocking("b/mail", &def).expect("apply");
    e.set_lifecycle_blocking("b/mail", DesiredLifecycle::Published)
        .expect("publish");
    read_all(&e, "b/mail");
    e.run_until_idle().expect("into wait");
    clock.advance_ms(MINUTE);
    let t = Instant::now();
    let r = e.run_until_idle().expect("advance");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.deliveries as usize, n, "every profile got its delivery");
    assert_eq!(r.template_errors, 0);
    r.deliveries as f64 / secs
}

/// Rendered deliveries per second (1 KB template, recorded in the outbox) against the same
/// flow with an untemplated message, back to back in each run.
fn bench6(a: &Args) {
    let (mut plain, mut rendered, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..a.runs {
        let p = deliveries_per_second(
            a.n,
            json!({"subject": "Your basket", "html": "x".repeat(1024)}),
        );
        let r = deliveries_per_second(a.n, kilobyte_template());
        println!(
            "  bench6 run {run}: plain {p:.0} deliveries/s, 1 KB template {r:.0} deliveries/s, ratio {:.2}",
            r / p
        );
        plain.push(p);
        rendered.push(r);
        ratios.push(r / p);
    }
    println!(
        "bench6 {} profiles wait->email: median plain {:.0} deliveries/s, rendered (1 KB template) {:.0} deliveries/s (target >= 50000), rendered/plain {:.2}",
        a.n,
        median(plain),
        median(rendered),
        median(ratios)
    );
}

fn bench3(a: &Args) {
    let (mut per, mut times) = (Vec::new(), Vec::new());
    let (_keep, template_path) = match &a.template {
        Some(p) => {
            println!("  bench3 setup: reusing template {p}");
            (None, std::path::PathBuf::from(p))
        }
        None => {
            let (template, setup) = held_template(a.held);
            println!(
                "  bench3 setup (once, copied per run): {:.0}s, peak RSS during setup {} KiB",
                setup.as_secs_f64(),
                peak_rss_kib()
            );
            let p = template.path().to_path_buf();
            (Some(template), p)
        }
    };
    let bytes = disk_bytes(&template_path);
    for run in 0..a.runs {
        let dir = copy_of(&template_path);
        let e = engine(dir.path(), Arc::new(VirtualClock::at_default_epoch()));
        let t = Instant::now();
        let s = e
            .status_blocking("b/held")
            .expect("status")
            .expect("exists");
        println!(
            "  bench3 run {run}: status snapshot (counts by state over {} enrollments) took {:.2}s; held {}",
            a.held,
            t.elapsed().as_secs_f64(),
            s.profiles.held
        );
        let (release, all) = resume_all(&e, a.held, false);
        let b = bytes as f64 / a.held as f64;
        println!(
            "  bench3 run {run}: {bytes} bytes on disk before resume (whole database incl. the profiles table) = {b:.0} bytes/held profile; resume (all released, phase Live) {release:.1}s; peak RSS so far {} KiB",
            peak_rss_kib()
        );
        drop(e);
        per.push(b);
        times.push(release);
        let _ = all;
    }
    println!(
        "bench3 hold {} profiles: median {:.0} bytes/held profile on disk, peak RSS {} KiB, median resume-all (released, phase Live) {:.1}s (target <= 100s)",
        a.held,
        median(per),
        peak_rss_kib(),
        median(times)
    );
}

fn bench4(a: &Args) {
    let n = a.n.min(300_000);
    let (mut after_counts, mut call_ms, mut last_ms) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..a.runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path(), Arc::new(SystemClock));
        profiles(&e, n, "p", |i| json!({"n": i}));
        e.apply_definition_blocking("b/held", &action_first_read(0))
            .expect("apply");
        e.set_lifecycle_blocking("b/held", DesiredLifecycle::Published)
            .expect("publish");
        read_all(&e, "b/held");
        let jid = e
            .store()
            .read(|tx| -> journey_operator::engine::store::Result<i64> {
                Ok(tx.journey_for_update("b/held")?.map(|r| r.id).unwrap_or(0))
            })
            .expect("id");
        let count = |e: &E| {
            e.store()
                .read(|tx| tx.count_deliveries(jid))
                .expect("count")
        };
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if e.tick().expect("tick").is_idle() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        };
        while count(&e) < (n / 10) as i64 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        e.set_lifecycle_blocking("b/held", DesiredLifecycle::Paused(PauseOptions::default()))
            .expect("pause");
        let returned_ms = SystemClock.now();
        let call = t.elapsed().as_secs_f64() * 1000.0;
        let at_return = count(&e);
        std::thread::sleep(Duration::from_millis(500));
        let later = count(&e);
        stop.store(true, Ordering::Relaxed);
        let _ = worker.join();
        let last = e
            .list_deliveries_blocking(Some("b/held"), None, None)
            .expect("list")
            .iter()
            .map(|d| d.created_at)
            .max()
            .unwrap_or(0);
        let after = later - at_return;
        let last_after = (last - returned_ms).max(0) as f64;
        println!(
            "  bench4 run {run}: pause call took {call:.1} ms, {at_return} deliveries before, {after} recorded after the call returned, last delivery {last_after:.0} ms after return"
        );
        after_counts.push(after as f64);
        call_ms.push(call);
        last_ms.push(last_after);
    }
    println!(
        "bench4 pause latency: median pause call {:.1} ms; median deliveries after return {:.0} (target 0); median time from return to last delivery {:.0} ms",
        median(call_ms),
        median(after_counts),
        median(last_ms)
    );
}

fn bench5(a: &Args) {
    let n = a.n.min(100_000);
    let mut firsts = Vec::new();
    for run in 0..a.runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = engine(dir.path(), Arc::new(SystemClock));
        let def = Definition::from_json(json!({
            "entry": {"audience": {"condition": "profile.go", "mode": "Qualification"}},
            "steps": [
                {"id": "hello", "action": {"channel": "email", "message": {"subject": "hello"}}},
                {"id": "wait", "wait": {"duration": "1h"}}
            ]
        }))
        .expect("definition");
        e.apply_definition_blocking("b/q", &def).expect("apply");
        e.set_lifecycle_blocking("b/q", DesiredLifecycle::Published)
            .expect("publish");
        profiles(&e, n, "p", |_| json!({"go": true}));
        e.set_lifecycle_blocking("b/q", DesiredLifecycle::Paused(PauseOptions::default()))
            .expect("pause");
        e.run_until_idle().expect("hold");
        let t = Instant::now();
        e.set_lifecycle_blocking("b/q", DesiredLifecycle::Published)
            .expect("resume");
        e.upsert_profile_blocking("fresh", json!({"go": true}))
            .expect("fresh");
        loop {
            e.tick().expect("tick");
            if !e
                .list_deliveries_blocking(Some("b/q"), Some("fresh"), Some(1))
                .expect("list")
                .is_empty()
            {
                break;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let s = e.status_blocking("b/q").expect("status").expect("exists");
        println!(
            "  bench5 run {run}: {n} held, resume rate 5000/s; first fresh entrance delivered {secs:.3}s after the resume call (phase {:?}, released {:?})",
            s.phase,
            s.resume.map(|r| r.released)
        );
        firsts.push(secs);
    }
    println!(
        "bench5 fresh entrance after resume: median {:.3}s (target <= 1s)",
        median(firsts)
    );
}

fn main() {
    let a = args();
    let (cpu, cores) = machine::cpu_and_cores();
    println!(
        "machine: {cpu}, {cores} cores available; SQLite WAL synchronous=NORMAL; runs per benchmark: {}",
        a.runs
    );
    for b in &a.only {
        match b {
            1 => bench1(&a),
            2 => bench2(&a),
            3 => bench3(&a),
            4 => bench4(&a),
            5 => bench5(&a),
            6 => bench6(&a),
            _ => {}
        }
    }
}
