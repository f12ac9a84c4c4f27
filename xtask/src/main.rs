//! `xtask`: the project's development tasks, kept out of the shipped `journey-operator`
//! binary: the local control plane the tests and `hack/run.sh` start, and the demo feeder.
//! `cargo xtask <task>` runs it (`.cargo/config.toml`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use xtask::control_plane::{ControlPlaneConfig, LocalControlPlane, vendored_etcd};
use xtask::node::{LocalNode, NODE_IP, NODE_NAME, NodeConfig};

#[derive(Parser, Debug)]
#[command(name = "xtask", about = "journey-operator's development tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a local control plane (etcd + kube-apiserver) in the foreground until interrupted.
    ControlPlane(ControlPlaneArgs),
    /// Run a real node with a control plane of its own (etcd, kube-apiserver,
    /// kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy) in the
    /// foreground until interrupted. Needs root.
    Node(NodeArgs),
    /// Feed simulated profiles and events into a running operator's data plane and print a
    /// live status table of the journeys in a namespace.
    Demo(DemoArgs),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    journey_operator::api::duration::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 30s, 5m or 1h"))
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    #[arg(long, default_value = "journeys-demo")]
    namespace: String,
    /// The data plane's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    data_plane: String,
    #[arg(long, env = "JOURNEY_DATA_PLANE_TOKEN_FILE")]
    token_file: PathBuf,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    interval: Duration,
    #[arg(long, default_value_t = 40)]
    events_per_tick: usize,
    /// The journey the lifecycle story (pause, filter, resume, hold, release) is told on;
    /// `--story-journey ''` feeds traffic only.
    #[arg(long, default_value = "onboarding")]
    story_journey: String,
    /// How long each story stage lingers once its status is reached, so a human can follow.
    #[arg(long, default_value_t = 10)]
    stage_seconds: u64,
    /// `spec.resume.rate` (held profiles released per second) of the story's resume.
    #[arg(long, default_value_t = 20)]
    resume_rate: i32,
    /// When stdout is not a terminal, print the table this often (plain lines for logs).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    log_every: Duration,
}

#[derive(clap::Args, Debug)]
struct ControlPlaneArgs {
    /// Directory for certificates, kubeconfig, etcd data, logs and the audit log.
    #[arg(long)]
    dir: PathBuf,
    /// The kube-apiserver binary (hack/build-kube-apiserver.sh builds and caches it).
    #[arg(long, env = "KUBE_APISERVER")]
    kube_apiserver: PathBuf,
    /// The etcd binary (default: the one shipped by the etcd-bin-vendored crate).
    #[arg(long, env = "ETCD")]
    etcd: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// Directory for everything the node writes: certificates, kubeconfig, etcd data,
    /// containerd's and the kubelet's state, logs.
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, env = "KUBE_APISERVER")]
    kube_apiserver: PathBuf,
    #[arg(long, env = "KUBE_CONTROLLER_MANAGER")]
    kube_controller_manager: PathBuf,
    #[arg(long, env = "KUBE_SCHEDULER")]
    kube_scheduler: PathBuf,
    #[arg(long, env = "KUBELET")]
    kubelet: PathBuf,
    #[arg(long, env = "KUBE_PROXY")]
    kube_proxy: PathBuf,
    #[arg(long, env = "KUBECTL")]
    kubectl: PathBuf,
    /// A docker-archive of the pause image `localhost/journey/pause:1`.
    #[arg(long)]
    pause_archive: PathBuf,
    #[arg(long, env = "ETCD")]
    etcd: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    journey_operator::tls::ensure_crypto_provider();
    match Cli::parse().command {
        Command::ControlPlane(args) => control_plane(args),
        Command::Node(args) => node(args),
        Command::Demo(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(xtask::demo::run(xtask::demo::DemoConfig {
                namespace: args.namespace,
                data_plane: args.data_plane,
                token_file: args.token_file,
                interval: args.interval,
                events_per_tick: args.events_per_tick,
                story_journey: Some(args.story_journey).filter(|j| !j.is_empty()),
                stage_seconds: Duration::from_secs(args.stage_seconds),
                resume_rate: args.resume_rate,
                log_every: args.log_every,
            }))?;
            Ok(())
        }
    }
}

/// Waits for Ctrl-C or SIGTERM, failing early when `exited` reports a dead component.
fn supervise(
    dir: &std::path::Path,
    mut exited: impl FnMut() -> Option<(&'static str, String)>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if let Some((name, status)) = exited() {
                        anyhow::bail!("{name} exited unexpectedly ({status}); see its log in {}", dir.display());
                    }
                }
            }
        }
    })
}

fn node(args: NodeArgs) -> anyhow::Result<()> {
    // SAFETY: prctl only changes a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let etcd = match args.etcd {
        Some(path) => path,
        None => vendored_etcd()?,
    };
    let started = std::time::Instant::now();
    let config = NodeConfig {
        dir: args.dir.clone(),
        etcd,
        kube_apiserver: args.kube_apiserver,
        kube_controller_manager: args.kube_controller_manager,
        kube_scheduler: args.kube_scheduler,
        kubelet: args.kubelet,
        kube_proxy: args.kube_proxy,
        kubectl: args.kubectl,
        pause_archive: args.pause_archive,
    };
    let mut node = LocalNode::start(&config).context("starting the real node")?;
    println!(
        "node {NODE_NAME} Ready at {NODE_IP} after {:.1}s; NODE_KUBECONFIG={}",
        started.elapsed().as_secs_f64(),
        node.kubeconfig().display()
    );
    std::fs::write(
        args.dir.join("ready"),
        format!(
            "NODE_KUBECONFIG={}\nNODE_DIR={}\nNODE_NAME={NODE_NAME}\nNODE_IP={NODE_IP}\n\
             NODE_CONTAINERD_ADDRESS={}\nNODE_CA_DIR={}\n",
            node.kubeconfig().display(),
            args.dir.display(),
            node.containerd_socket.display(),
            node.plane.dir.display(),
        ),
    )?;
    std::io::stdout().flush()?;
    let outcome = supervise(&args.dir, || node.exited());
    node.stop();
    outcome
}

fn control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    // Die with the shell that started us; our children die with us (parent-death signals).
    // SAFETY: prctl only changes a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let etcd = match args.etcd {
        Some(path) => path,
        None => vendored_etcd()?,
    };
    let config =
        ControlPlaneConfig::loopback(args.dir.clone(), args.kube_apiserver.clone(), etcd.clone());
    let mut plane =
        LocalControlPlane::start(&config).context("starting the local control plane")?;
    println!(
        "control plane ready: kube-apiserver {} ({}) at {}, etcd {}",
        args.kube_apiserver.display(),
        plane.apiserver_version,
        plane.server,
        etcd.display()
    );
    println!("KUBECONFIG={}", plane.kubeconfig.display());
    std::fs::write(
        args.dir.join("ready"),
        format!(
            "KUBECONFIG={}\nKUBE_APISERVER_VERSION={}\nKUBE_AUDIT_LOG={}\n",
            plane.kubeconfig.display(),
            plane.apiserver_version,
            plane.audit_log.display()
        ),
    )?;
    std::io::stdout().flush()?;

    let outcome = supervise(&args.dir, || plane.exited());
    plane.stop();
    outcome
}
