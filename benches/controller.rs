//! Controller benchmarks (`hack/bench-controller.sh`, or `cargo bench --bench controller` with
//! `KUBECONFIG` and `CONTROL_PLANE_DIR` of a local control plane exported). Not a test: it prints
//! figures and never fails on a missed target.
//!
//! It drives the real `journey-operator run` binary (the release build cargo made for this bench)
//! as a child process, acting as its own client-certificate user so the audit log attributes its
//! requests, and measures:
//! 1. apply-to-Ready latency with 1,000 journeys present (200 generation-bumping applies), in
//!    each run back to back: the null controller (the baseline: kube-rs reacting to the same
//!    watch with one status write), the controller with its embedded engine, and the controller
//!    in remote mode against a `journey-operator engine` over TLS;
//! 2. cold start: 5,000 journeys created while the controller is down, time until all Ready;
//! 3. idle API writes per journey per hour at steady state (audit log, `--resync=2s`);
//! 4. controller RSS (VmRSS, VmHWM) with 10,000 journeys reconciled; with `BENCH_COMPARE_BIN`
//!    (another commit's build), each run measures both binaries back to back and the medians'
//!    ratio is printed;
//! 5. an emergency hold over 1,000 live journeys: one `JourneyHold` to all Held, its deletion to
//!    all Live, and pausing the same journeys through 1,000 spec patches, back to back.
//!
//! Each figure is measured three times (`BENCH_RUNS` overrides); every run and the median are printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use journey_operator::api::Journey;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use xtask::control_plane::{mint_client_cert, write_kubeconfig_for};

#[path = "support/engine_server.rs"]
mod engine_server;
#[path = "support/null_controller.rs"]
mod null_controller;
#[path = "support/tracker.rs"]
mod tracker;
use engine_server::EngineServer;
use null_controller::NullController;
use tracker::Tracker;

/// Runs per figure (median reported); `BENCH_RUNS` overrides.
fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}
/// Concurrent requests while populating a namespace.
const SETUP_CONCURRENCY: usize = 64;
const MANAGER: &str = "journey-bench";
const IDENTITY: &str = "journey-bench-controller";

const LATENCY_JOURNEYS: usize = 1_000;
const LATENCY_APPLIES: usize = 200;
const COLD_JOURNEYS: usize = 5_000;
const MEMORY_JOURNEYS: usize = 10_000;
const IDLE_RESYNC: &str = "2s";
const IDLE_WINDOW: Duration = Duration::from_secs(20);
const READY_TIMEOUT: Duration = Duration::from_secs(600);
const HOLD_JOURNEYS: usize = 1_000;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env_path(name: &str) -> Res<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{name} is not set: run hack/bench-controller.sh").into())
}

fn read_proc(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn load() -> String {
    read_proc("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Machine-wide CPU ticks from /proc/stat: (all, stolen by the hypervisor). On a shared VM the
/// steal share explains runs that differ for no reason in the code.
fn cpu_ticks() -> (u64, u64) {
    let stat = read_proc("/proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    (fields.iter().sum(), fields.get(7).copied().unwrap_or(0))
}

/// The share of CPU time stolen by the hypervisor since `before`, in percent.
fn steal_since(before: (u64, u64)) -> f64 {
    let (all, steal) = cpu_ticks();
    let all = all.saturating_sub(before.0);
    if all == 0 {
        return 0.0;
    }
    steal.saturating_sub(before.1) as f64 * 100.0 / all as f64
}

/// CPU seconds (user + system) kube-apiserver has used so far, from /proc; 0 when not found.
fn apiserver_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let ticks = 100.0; // USER_HZ on Linux
    for entry in dir.flatten() {
        let path = entry.path();
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if !String::from_utf8_lossy(first).contains("kube-apiserver") {
            continue;
        }
        let stat = read_proc(&path.join("stat").display().to_string());
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        return (num(11) + num(12)) / ticks;
    }
    0.0
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nearest-rank percentile of a sorted slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A Published journey like manifests/examples: event entry, a wait, a `record` action.
fn journey(name: &str, wait: &str) -> Journey {
    serde_json::from_value(json!({
        "apiVersion": "journey.dev/v1alpha1",
        "kind": "Journey",
        "metadata": {"name": name},
        "spec": {
            "state": "Published",
            "entry": {"event": {"name": "BenchEvent", "condition": "has(event.value) && event.value > 0"}},
            "exit": [{"event": {"name": "BenchExit"}}],
            "steps": [
                {"id": "wait", "wait": {"duration": wait}},
                {"id": "record", "action": {"channel": "record", "message": {"template": "bench"}}}
            ]
        }
    }))
    .expect("journey")
}

/// One `journey-operator run` child process under the bench controller identity.
struct Operator {
    child: Child,
    ops: u16,
    log: PathBuf,
}

impl Operator {
    fn start(bench: &Bench, ns: &str, data_dir: &Path, resync: Option<&str>) -> Res<Operator> {
        Self::start_with(bench, &bench.binary, ns, data_dir, resync, &[])
    }

    /// `binary` with `extra` flags (remote mode's, say).
    fn start_with(
        bench: &Bench,
        binary: &Path,
        ns: &str,
        data_dir: &Path,
        resync: Option<&str>,
        extra: &[String],
    ) -> Res<Operator> {
        let ops = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut args = vec![
            "run".to_string(),
            format!("--data-dir={}", data_dir.display()),
            format!("--namespace={ns}"),
            format!("--instance={IDENTITY}"),
            format!("--ops-addr=127.0.0.1:{ops}"),
        ];
        if let Some(resync) = resync {
            args.push(format!("--resync={resync}"));
        }
        args.extend(extra.iter().cloned());
        let child = Command::new(binary)
            .args(&args)
            .env("KUBECONFIG", &bench.controller_kubeconfig)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Operator { child, ops, log })
    }

    async fn metric(&self, name: &str) -> Option<u64> {
        let body = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.ops))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    async fn reconciles(&self) -> u64 {
        self.metric("journey_reconciles_total").await.unwrap_or(0)
    }

    async fn status_writes(&self) -> u64 {
        self.metric("journey_status_writes_total")
            .await
            .unwrap_or(0)
    }

    /// Waits until the counter `metric` of `/metrics` reaches `n`.
    async fn wait_metric(&self, metric: &str, n: u64, timeout: Duration) -> Res<()> {
        let deadline = Instant::now() + timeout;
        while self.metric(metric).await.unwrap_or(0) < n {
            if Instant::now() > deadline {
                return Err(format!("{metric} below {n} after {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    async fn wait_reconciles(&self, n: u64, timeout: Duration) -> Res<()> {
        self.wait_metric("journey_reconciles_total", n, timeout)
            .await
    }

    /// A field of `/proc/<pid>/status` in KiB (0 when absent).
    fn status_kib(&self, name: &str) -> u64 {
        read_proc(&format!("/proc/{}/status", self.child.id()))
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> (u64, u64) {
        (self.status_kib("VmRSS:"), self.status_kib("VmHWM:"))
    }

    /// (RssAnon, RssFile) in KiB: the heap and stacks vs the mapped binary and libraries.
    fn memory_split(&self) -> (u64, u64) {
        (self.status_kib("RssAnon:"), self.status_kib("RssFile:"))
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    fn stop(mut self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn alive(&mut self) -> Res<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = read_proc(&self.log.display().to_string());
            let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            return Err(format!("journey-operator exited ({status}); log tail:\n{tail}").into());
        }
        Ok(())
    }
}

struct Bench {
    client: Client,
    binary: PathBuf,
    controller_kubeconfig: PathBuf,
    audit_log: PathBuf,
    work: tempfile::TempDir,
}

impl Bench {
    async fn namespace(&self, name: &str) -> Res<String> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns).await?;
        Ok(name.to_string())
    }

    /// Creates `n` journeys `j-00000`… with bounded concurrency; returns the elapsed time.
    async fn populate(&self, ns: &str, n: usize) -> Res<Duration> {
        let api: Api<Journey> = Api::namespaced(self.client.clone(), ns);
        let started = Instant::now();
        futures::stream::iter(0..n)
            .map(|i| {
                let api = api.clone();
                async move {
                    let pp = PostParams {
                        field_manager: Some(MANAGER.into()),
                        ..PostParams::default()
                    };
                    api.create(&pp, &journey(&format!("j-{i:05}"), "1h"))
                        .await
                        .map(|_| ())
                }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(started.elapsed())
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }
}

/// `manifests/admission/` as the README recommends (the finalizer comes with each new
/// journey); `BENCH_ADMISSION=none` leaves it out, to measure the controller adding it.
async fn install_admission(client: &Client) -> Res<bool> {
    if std::env::var("BENCH_ADMISSION").as_deref() == Ok("none") {
        return Ok(false);
    }
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/admission/engine-finalizer.yaml"
    ))?;
    let params = PatchParams::apply(MANAGER).force();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc)?;
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match value["kind"].as_str() {
            Some("MutatingAdmissionPolicy") => {
                let api: Api<MutatingAdmissionPolicy> = Api::all(client.clone());
                api.patch(&name, &params, &Patch::Apply(&value)).await?;
            }
            Some("MutatingAdmissionPolicyBinding") => {
                let api: Api<MutatingAdmissionPolicyBinding> = Api::all(client.clone());
                api.patch(&name, &params, &Patch::Apply(&value)).await?;
            }
            other => {
                return Err(format!("unexpected kind {other:?} in manifests/admission/").into());
            }
        }
    }
    // In effect once a server-side dry-run create comes back with the finalizer.
    let api: Api<Journey> = Api::namespaced(client.clone(), "default");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = api
            .create(&dry_run, &journey("admission-probe", "1h"))
            .await?;
        if !probe.finalizers().is_empty() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Err("manifests/admission/ not in effect after 30s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn install_crds(client: &Client) -> Res<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/journey.dev.yaml"
    ))?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc)?;
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await??;
    }
    Ok(())
}

fn machine_line(apiserver: &str) -> String {
    let cpuinfo = read_proc("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_kib: u64 = read_proc("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "machine: nproc={nproc} mem={:.1}GiB cpu=\"{model}\" kube-apiserver={apiserver} date={}",
        mem_kib as f64 / 1024.0 / 1024.0,
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// Figure 2: 5,000 journeys created while the controller is down, then the controller started.
async fn cold_start(bench: &Bench) -> Res<()> {
    println!(
        "\n== cold start: {COLD_JOURNEYS} journeys created while the controller is down (target >= 100 journeys/s)"
    );
    let mut rates = Vec::new();
    for run in 1..=runs() {
        let ns = bench.namespace(&format!("bench-cold-{run}")).await?;
        let created = bench.populate(&ns, COLD_JOURNEYS).await?;
        let mut tracker = Tracker::start(&bench.client, &ns);
        let before = load();
        let cpu_before = apiserver_cpu_seconds();
        let ticks_before = cpu_ticks();
        let started = Instant::now();
        let mut op = Operator::start(bench, &ns, &bench.data_dir(&ns), None)?;
        let result = tracker.wait_ready(COLD_JOURNEYS, READY_TIMEOUT).await;
        let apiserver_ms = (apiserver_cpu_seconds() - cpu_before) * 1000.0 / COLD_JOURNEYS as f64;
        let steal = steal_since(ticks_before);
        op.alive()?;
        let done = result?;
        let secs = done.duration_since(started).as_secs_f64();
        let rate = COLD_JOURNEYS as f64 / secs;
        let writes = op.status_writes().await;
        let (rss, hwm) = op.memory();
        // Every run starts from the same cluster: this run's journeys go (the controller is
        // still running, so their finalizers are released) before the next is created.
        let cleared = remove_journeys(&bench.client, &ns).await;
        op.stop();
        cleared?;
        println!(
            "cold run {run}: {COLD_JOURNEYS} Ready in {secs:.1}s = {rate:.1} journeys/s \
             (setup: created in {:.1}s; status writes {writes}; kube-apiserver CPU {apiserver_ms:.1} ms/journey; \
             CPU stolen by the hypervisor {steal:.1}%; VmRSS {:.1} MiB VmHWM {:.1} MiB; load {before} -> {})",
            created.as_secs_f64(),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            load()
        );
        rates.push(rate);
    }
    let m = median(&rates);
    println!(
        "cold start median: {m:.1} journeys/s (target >= 100: {})",
        if m >= 100.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

fn condition_true(j: &Journey, type_: &str) -> bool {
    j.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

fn held(j: &Journey) -> bool {
    condition_true(j, "Held")
        && j.status.as_ref().and_then(|s| s.phase) == Some(journey_operator::api::Phase::Paused)
}

fn live_not_held(j: &Journey) -> bool {
    !condition_true(j, "Held")
        && j.status.as_ref().and_then(|s| s.phase) == Some(journey_operator::api::Phase::Live)
}

fn paused(j: &Journey) -> bool {
    j.status.as_ref().and_then(|s| s.phase) == Some(journey_operator::api::Phase::Paused)
}

/// Figure 5: an emergency hold over 1,000 live journeys: from creating one `JourneyHold` to
/// every journey Held (and from deleting it to every journey Live again), against pausing the
/// same journeys through their specs (1,000 patches, as a bulk edit in Git would sync), back to
/// back on the same controller.
async fn hold(bench: &Bench) -> Res<()> {
    println!(
        "\n== emergency hold: one JourneyHold over {HOLD_JOURNEYS} live journeys, against pausing them through their specs"
    );
    let ns = bench.namespace("bench-hold").await?;
    bench.populate(&ns, HOLD_JOURNEYS).await?;
    let mut ready = Tracker::start(&bench.client, &ns);
    let mut op = Operator::start(bench, &ns, &bench.data_dir(&ns), None)?;
    ready.wait_ready(HOLD_JOURNEYS, READY_TIMEOUT).await?;
    let holds: Api<journey_operator::api::hold::JourneyHold> =
        Api::namespaced(bench.client.clone(), &ns);
    let journeys: Api<Journey> = Api::namespaced(bench.client.clone(), &ns);
    let (mut hold_secs, mut release_secs, mut spec_secs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs() {
        let mut held_count = Tracker::counting(&bench.client, &ns, held);
        let mut live_count = Tracker::counting(&bench.client, &ns, live_not_held);
        live_count.wait_ready(HOLD_JOURNEYS, READY_TIMEOUT).await?;
        let hold: journey_operator::api::hold::JourneyHold = serde_json::from_value(json!({
            "apiVersion": "journey.dev/v1alpha1", "kind": "JourneyHold",
            "metadata": {"name": format!("incident-{run}")},
            "spec": {"selector": {}, "reason": "bench incident", "duration": "1h"}
        }))?;
        let started = Instant::now();
        holds.create(&PostParams::default(), &hold).await?;
        let all_held = held_count.wait_ready(HOLD_JOURNEYS, READY_TIMEOUT).await?;
        let held_in = all_held.duration_since(started).as_secs_f64();
        let started = Instant::now();
        holds
            .delete(&format!("incident-{run}"), &DeleteParams::default())
            .await?;
        let all_live = live_count.wait_ready(HOLD_JOURNEYS, READY_TIMEOUT).await?;
        let released_in = all_live.duration_since(started).as_secs_f64();

        // The same journeys paused through their specs, then published again.
        let mut paused_count = Tracker::counting(&bench.client, &ns, paused);
        let started = Instant::now();
        patch_states(&journeys, "Paused").await?;
        let all_paused = paused_count
            .wait_ready(HOLD_JOURNEYS, READY_TIMEOUT)
            .await?;
        let spec_in = all_paused.duration_since(started).as_secs_f64();
        patch_states(&journeys, "Published").await?;
        op.alive()?;
        println!(
            "hold run {run}: all {HOLD_JOURNEYS} Held {held_in:.2}s after the hold was created, Live again {released_in:.2}s after it was deleted; \
             through the specs: all Paused {spec_in:.2}s after the first patch (load {})",
            load()
        );
        hold_secs.push(held_in);
        release_secs.push(released_in);
        spec_secs.push(spec_in);
    }
    let (h, r, p) = (
        median(&hold_secs),
        median(&release_secs),
        median(&spec_secs),
    );
    println!(
        "hold median: {HOLD_JOURNEYS} held in {h:.2}s ({:.0} journeys/s), released in {r:.2}s; spec pause {p:.2}s; ratio hold / spec pause {:.2}",
        HOLD_JOURNEYS as f64 / h,
        h / p
    );
    let cleared = remove_journeys(&bench.client, &ns).await;
    op.stop();
    cleared
}

/// The names of every journey `api` lists.
async fn journey_names(api: &Api<Journey>) -> Res<Vec<String>> {
    Ok(api
        .list_metadata(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|j| j.name_any())
        .collect())
}

/// Sets `spec.state` of every journey of the namespace (one merge patch each).
async fn patch_states(api: &Api<Journey>, state: &str) -> Res<()> {
    let names = journey_names(api).await?;
    let patch = json!({"spec": {"state": state}});
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            let patch = patch.clone();
            async move {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// Deletes every journey of `ns` and waits until they are gone. The local control plane has no
/// kube-controller-manager, so deleting the namespace would not delete its contents.
async fn remove_journeys(client: &Client, ns: &str) -> Res<()> {
    let api: Api<Journey> = Api::namespaced(client.clone(), ns);
    // One request per journey: a single deletecollection of thousands outlives the
    // apiserver's request timeout.
    let names = journey_names(&api).await?;
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                    Err(e) => Err(e),
                    Ok(_) => Ok(()),
                }
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = api.list_metadata(&ListParams::default().limit(1)).await?;
        if left.items.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("journeys of {ns} still present after {READY_TIMEOUT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Figure 4: RSS with 10,000 journeys present and reconciled.
async fn memory(bench: &Bench) -> Res<()> {
    println!(
        "\n== memory: {MEMORY_JOURNEYS} journeys present and reconciled (target VmRSS <= 64 MiB)"
    );
    let ns = bench.namespace("bench-memory").await?;
    let created = bench.populate(&ns, MEMORY_JOURNEYS).await?;
    println!(
        "setup: {MEMORY_JOURNEYS} journeys created in {:.1}s",
        created.as_secs_f64()
    );
    let mut tracker = Tracker::start(&bench.client, &ns);
    let mut binaries = vec![bench.binary.clone()];
    if let Some(other) = std::env::var_os("BENCH_COMPARE_BIN") {
        binaries.push(PathBuf::from(other));
    }
    let mut rss_runs: Vec<Vec<f64>> = vec![Vec::new(); binaries.len()];
    let mut hwm_runs: Vec<Vec<f64>> = vec![Vec::new(); binaries.len()];
    for run in 1..=runs() {
        for (b, binary) in binaries.iter().enumerate() {
            // A fresh engine each run: every journey is applied to the engine again.
            let before = load();
            let started = Instant::now();
            let dir = bench.data_dir(&format!("{ns}-{run}-{b}"));
            let mut op = Operator::start_with(bench, binary, &ns, &dir, None, &[])?;
            // Ready alone proves nothing after run 1 (the statuses of the run before are
            // Ready), and a journey can be reconciled more than once: every run is done when
            // every journey's status has been written again, since a fresh engine's history
            // carries new timestamps.
            let result = async {
                tracker.wait_ready(MEMORY_JOURNEYS, READY_TIMEOUT).await?;
                op.wait_reconciles(MEMORY_JOURNEYS as u64, READY_TIMEOUT)
                    .await?;
                op.wait_metric(
                    "journey_status_writes_total",
                    MEMORY_JOURNEYS as u64,
                    READY_TIMEOUT,
                )
                .await
            }
            .await;
            op.alive()?;
            result?;
            let reconciled = started.elapsed().as_secs_f64();
            // Let the tail of the work (events, scheduler) settle before sampling.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (rss, hwm) = op.memory();
            let (anon, file) = op.memory_split();
            let reconciles = op.reconciles().await;
            let writes = op.status_writes().await;
            op.stop();
            let (rss, hwm) = (rss as f64 / 1024.0, hwm as f64 / 1024.0);
            println!(
                "memory run {run}, {}: VmRSS {rss:.1} MiB (RssAnon {:.1}, RssFile {:.1}), VmHWM {hwm:.1} MiB (all reconciled after {reconciled:.1}s; \
                 reconciles {reconciles}, status writes {writes}; load {before} -> {})",
                binary.display(),
                anon as f64 / 1024.0,
                file as f64 / 1024.0,
                load()
            );
            rss_runs[b].push(rss);
            hwm_runs[b].push(hwm);
        }
    }
    for (b, binary) in binaries.iter().enumerate() {
        let (rss, hwm) = (median(&rss_runs[b]), median(&hwm_runs[b]));
        println!(
            "memory median, {}: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB (target VmRSS <= 64 MiB: {}; peak <= 64 MiB: {})",
            binary.display(),
            if rss <= 64.0 { "met" } else { "NOT met" },
            if hwm <= 64.0 { "met" } else { "NOT met" }
        );
    }
    if binaries.len() == 2 {
        let ratio = median(&rss_runs[0]) / median(&rss_runs[1]);
        println!(
            "memory VmRSS ratio this build / BENCH_COMPARE_BIN: {ratio:.3} (target <= 1.05: {})",
            if ratio <= 1.05 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// Who reacts to the applies of figure 1.
#[derive(Clone, Copy, PartialEq)]
enum Reactor {
    Null,
    Embedded,
    Remote,
}

impl Reactor {
    const ALL: [Reactor; 3] = [Reactor::Null, Reactor::Embedded, Reactor::Remote];

    fn name(self) -> &'static str {
        match self {
            Reactor::Null => "null controller (baseline)",
            Reactor::Embedded => "controller, embedded engine",
            Reactor::Remote => "controller, remote engine over TLS",
        }
    }
}

/// One run of figure 1: `LATENCY_APPLIES` generation-bumping applies, each waited on until
/// Ready and current; the samples in ms, sorted.
async fn apply_to_ready(api: &Api<Journey>, tracker: &mut Tracker, round: usize) -> Res<Vec<f64>> {
    let mut samples = Vec::with_capacity(LATENCY_APPLIES);
    for i in 0..LATENCY_APPLIES {
        // A different journey each time; a new wait duration bumps the generation.
        let name = format!("j-{:05}", (round * LATENCY_APPLIES + i) % LATENCY_JOURNEYS);
        let wait = format!("{}m", 61 + round * 1000 + i);
        let applied = api
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(journey(&name, &wait)),
            )
            .await?;
        let returned = Instant::now();
        let generation = applied.metadata.generation.ok_or("no generation")?;
        let ready = tracker
            .wait_generation(&name, generation, Duration::from_secs(60))
            .await?;
        // A watch event can in principle be handled before the response: that counts as 0.
        samples.push(ready.saturating_duration_since(returned).as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

/// Starts a controller and waits until it has reconciled every journey once and its status
/// writes have settled (one second without a new one), so a run measures applies, not the
/// catch-up of a start.
async fn caught_up(bench: &Bench, ns: &str, data: &Path, extra: &[String]) -> Res<Operator> {
    let mut op = Operator::start_with(bench, &bench.binary, ns, data, None, extra)?;
    let result = op
        .wait_reconciles(LATENCY_JOURNEYS as u64, READY_TIMEOUT)
        .await;
    op.alive()?;
    result?;
    let mut writes = op.status_writes().await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = op.status_writes().await;
        if now == writes {
            return Ok(op);
        }
        writes = now;
    }
}

/// Figures 1 and 3 share a namespace of 1,000 Ready journeys.
async fn latency_and_idle(bench: &Bench) -> Res<()> {
    let ns = bench.namespace("bench-latency").await?;
    let created = bench.populate(&ns, LATENCY_JOURNEYS).await?;
    let mut tracker = Tracker::start(&bench.client, &ns);
    let data = bench.data_dir(&ns);
    let remote_data = bench.data_dir(&format!("{ns}-remote-controller"));
    let engine = EngineServer::start(&bench.binary, &bench.data_dir("engine-server")).await?;
    let remote_flags = engine.run_flags();
    let op = Operator::start(bench, &ns, &data, None)?;
    tracker.wait_ready(LATENCY_JOURNEYS, READY_TIMEOUT).await?;
    op.stop();
    println!(
        "\n== apply-to-Ready latency: {LATENCY_APPLIES} applies with {LATENCY_JOURNEYS} Ready journeys present, \
         null controller, embedded and remote back to back in each run \
         (targets: embedded p99 <= 250 ms and <= 2x the null controller's; remote p99 <= 50 ms)"
    );
    println!(
        "setup: {LATENCY_JOURNEYS} journeys created in {:.1}s and Ready; controllers at default --resync",
        created.as_secs_f64()
    );
    let api: Api<Journey> = Api::namespaced(bench.client.clone(), &ns);
    let mut p99s: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut p50s: HashMap<&str, Vec<f64>> = HashMap::new();
    for run in 1..=runs() {
        for (slot, reactor) in Reactor::ALL.into_iter().enumerate() {
            let round = run * Reactor::ALL.len() + slot;
            let before = load();
            let samples = match reactor {
                Reactor::Null => {
                    let null = NullController::start(&bench.client, &ns);
                    let samples = apply_to_ready(&api, &mut tracker, round).await;
                    drop(null);
                    samples?
                }
                Reactor::Embedded | Reactor::Remote => {
                    let (dir, extra) = if reactor == Reactor::Remote {
                        (&remote_data, remote_flags.as_slice())
                    } else {
                        (&data, &[][..])
                    };
                    let mut op = caught_up(bench, &ns, dir, extra).await?;
                    let samples = apply_to_ready(&api, &mut tracker, round).await;
                    op.alive()?;
                    op.stop();
                    samples?
                }
            };
            let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
            println!(
                "latency run {run}, {}: p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms over {} applies (load {before} -> {})",
                reactor.name(),
                samples[samples.len() - 1],
                samples.len(),
                load()
            );
            p50s.entry(reactor.name()).or_default().push(p50);
            p99s.entry(reactor.name()).or_default().push(p99);
        }
    }
    let med = |m: &HashMap<&str, Vec<f64>>, r: Reactor| median(&m[r.name()]);
    for r in Reactor::ALL {
        println!(
            "latency median, {}: p50 {:.1} ms, p99 {:.1} ms",
            r.name(),
            med(&p50s, r),
            med(&p99s, r)
        );
    }
    let (null, embedded, remote) = (
        med(&p99s, Reactor::Null),
        med(&p99s, Reactor::Embedded),
        med(&p99s, Reactor::Remote),
    );
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "latency p99 ratios: embedded / null {:.2} (target <= 2: {}), remote / null {:.2}; \
         embedded p99 <= 250 ms: {}; remote p99 <= 50 ms: {}",
        embedded / null,
        met(embedded <= 2.0 * null),
        remote / null,
        met(embedded <= 250.0),
        met(remote <= 50.0)
    );
    drop(engine);

    println!(
        "\n== idle: API writes per idle journey per hour, {LATENCY_JOURNEYS} Ready journeys, --resync={IDLE_RESYNC} (target 0)"
    );
    // The embedded engine's data, restarted with a short resync.
    let mut op = Operator::start(bench, &ns, &data, Some(IDLE_RESYNC))?;
    // Steady state: the restart's first round, and one more.
    op.wait_reconciles(2 * LATENCY_JOURNEYS as u64, READY_TIMEOUT)
        .await?;
    op.alive()?;
    let mut rates = Vec::new();
    for run in 1..=runs() {
        let before = load();
        let offset = std::fs::metadata(&bench.audit_log)?.len() as usize;
        let reconciles_before = op.reconciles().await;
        tokio::time::sleep(IDLE_WINDOW).await;
        let reconciles = op.reconciles().await - reconciles_before;
        // The audit backend writes a request's line when it completes; let the last ones land.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let text = std::fs::read(&bench.audit_log)?;
        let window = String::from_utf8_lossy(&text[offset.min(text.len())..]);
        let mut by_resource: HashMap<String, u64> = HashMap::new();
        let mut writes = 0u64;
        for line in window.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let resource = event["objectRef"]["resource"].as_str().unwrap_or("");
            if event["user"]["username"] == IDENTITY
                && matches!(
                    event["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
                && resource != "leases"
            {
                writes += 1;
                *by_resource
                    .entry(format!(
                        "{} {resource}",
                        event["verb"].as_str().unwrap_or("")
                    ))
                    .or_default() += 1;
            }
        }
        op.alive()?;
        let per_hour = writes as f64 / LATENCY_JOURNEYS as f64 * 3600.0 / IDLE_WINDOW.as_secs_f64();
        println!(
            "idle run {run}: {writes} writes in {:.0}s window ({reconciles} reconciles = {:.1} resync rounds) \
             = {per_hour:.3} writes/journey/hour {by_resource:?} (load {before} -> {})",
            IDLE_WINDOW.as_secs_f64(),
            reconciles as f64 / LATENCY_JOURNEYS as f64,
            load()
        );
        rates.push(per_hour);
    }
    let (rss, hwm) = op.memory();
    op.stop();
    let m = median(&rates);
    println!(
        "idle median: {m:.3} writes/journey/hour (target 0: {}); controller VmRSS {:.1} MiB VmHWM {:.1} MiB with {LATENCY_JOURNEYS} journeys",
        if m == 0.0 { "met" } else { "NOT met" },
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}

async fn main_async() -> Res<()> {
    let kubeconfig = env_path("KUBECONFIG")?;
    let cp_dir = env_path("CONTROL_PLANE_DIR")?;
    let binary = std::env::var_os("JOURNEY_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_journey-operator")));
    let client = Client::try_default().await?;
    let version = client.apiserver_version().await?;
    println!("{}", machine_line(&version.git_version));
    println!("journey-operator binary: {}", binary.display());
    install_crds(&client).await?;
    let admission = install_admission(&client).await?;
    println!(
        "manifests/admission/ (finalizer at creation): {}",
        if admission {
            "installed"
        } else {
            "not installed (BENCH_ADMISSION=none)"
        }
    );

    // The controller acts as its own admin user so the audit log can single out its requests.
    let server = kube::config::Kubeconfig::read_from(&kubeconfig)?
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or("no server in KUBECONFIG")?;
    let cert = mint_client_cert(&cp_dir, IDENTITY, Some("system:masters"))?;
    let controller_kubeconfig = write_kubeconfig_for(&cp_dir, &server, IDENTITY, &cert)?;
    let bench = Bench {
        client,
        binary,
        controller_kubeconfig,
        audit_log: cp_dir.join("audit.log"),
        work: tempfile::tempdir()?,
    };

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if wanted("latency") || wanted("idle") {
        latency_and_idle(&bench).await?;
    }
    if wanted("cold") {
        cold_start(&bench).await?;
    }
    if wanted("memory") {
        memory(&bench).await?;
    }
    if wanted("hold") {
        hold(&bench).await?;
    }
    Ok(())
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = runtime.block_on(main_async()) {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}
