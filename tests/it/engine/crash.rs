//! Crash safety: the engine runs as a child process on a real SQLite file, is
//! killed with SIGKILL in the middle of a resume of 100,000 held profiles and
//! in the middle of a run, restarted, and finishes: no enrollment lost, every
//! profile in exactly one state, no idempotency key with two deliveries.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

const N: i64 = 100_000;

fn worker(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_journey-engine-worker"));
    c.args(args).stdout(Stdio::null()).stderr(Stdio::inherit());
    c
}

fn q(db: &str, sql: &str) -> i64 {
    let c = Connection::open(db).expect("open");
    c.busy_timeout(Duration::from_secs(30)).expect("busy");
    c.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Spawns `cmd`, kills it with SIGKILL once `progress` is strictly between 0
/// and N; returns whether the kill happened mid-way.
fn kill_midway(db: &str, cmd: &str, progress: &str, env: &[(&str, &str)]) -> bool {
    let mut child = worker(&[cmd, db])
        .envs(env.iter().copied())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let p = q(db, progress);
        if p > 0 && p < N {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            return true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "worker too slow"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn check_invariants(db: &str, journey: &str) {
    let jid = format!("(SELECT id FROM journeys WHERE key = '{journey}')");
    assert_eq!(
        q(
            db,
            &format!("SELECT COUNT(*) FROM enrollments WHERE journey_id = {jid}")
        ),
        N,
        "no enrollment lost or duplicated"
    );
    assert_eq!(
        q(
            db,
            &format!(
                "SELECT COUNT(DISTINCT profile_seq) FROM enrollments WHERE journey_id = {jid}"
            )
        ),
        N,
        "one enrollment (one state) per profile"
    );
    assert_eq!(
        q(
            db,
            &format!("SELECT COUNT(*) FROM enrollments WHERE journey_id = {jid} AND state = 1")
        ),
        N,
        "every profile delivered once and now waiting"
    );
    assert_eq!(
        q(
            db,
            &format!("SELECT COUNT(*) FROM deliveries WHERE journey_id = {jid}")
        ),
        N
    );
    assert_eq!(
        q(
            db,
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE journey_id = {jid} GROUP BY epoch, profile_seq, step_key, entry_no HAVING COUNT(*) > 1)"
            )
        ),
        0,
        "no idempotency key with two deliveries"
    );
}

#[test]
fn crash_during_resume_of_100k_held_profiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let db = db.to_str().expect("utf8 path");
    let n = N.to_string();
    assert!(
        worker(&["setup-held", db, &n])
            .status()
            .expect("setup")
            .success()
    );
    assert_eq!(q(db, "SELECT COUNT(*) FROM enrollments WHERE state = 2"), N);
    let killed = kill_midway(
        db,
        "resume",
        "SELECT COUNT(*) FROM deliveries",
        &[("JOURNEY_RELEASE_BATCH", "2000"), ("JOURNEY_BATCH", "1000")],
    );
    assert!(killed, "the worker must be killed mid-resume");
    assert!(worker(&["resume", db]).status().expect("restart").success());
    check_invariants(db, "crash/resume");
}

#[test]
fn crash_during_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash-run.db");
    let db = db.to_str().expect("utf8 path");
    let n = N.to_string();
    assert!(
        worker(&["setup-run", db, &n])
            .status()
            .expect("setup")
            .success()
    );
    let killed = kill_midway(
        db,
        "run",
        "SELECT COUNT(*) FROM enrollments",
        &[("JOURNEY_BATCH", "1000")],
    );
    assert!(killed, "the worker must be killed mid-run");
    assert!(worker(&["run", db]).status().expect("restart").success());
    check_invariants(db, "crash/run");
    assert_eq!(
        q(
            db,
            "SELECT COUNT(*) FROM runs WHERE outcome = 'Succeeded' AND kind = 'RunNow'"
        ),
        1,
        "the run token was handled once"
    );
}
