//! Command-line entry points.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use journey_operator::controller::reconciler::ControllerConfig;
use journey_operator::controller::runner::{LeaderConfig, RunConfig};
use journey_operator::dataplane::DataPlaneConfig;
use journey_operator::engine::DestinationConfig;

#[derive(Parser, Debug)]
#[command(
    name = "journey-operator",
    version,
    about = "Declarative lifecycle for customer journeys on Kubernetes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print every CustomResourceDefinition of the project as YAML (the source of crds/).
    Crd,
    /// Run the controller with the journey engine embedded (SQLite in --data-dir), or against
    /// a remote engine (--engine-url).
    Run(Box<RunArgs>),
    /// Run the journey engine as a service: the v1 engine API and the data plane, for
    /// controllers (`run --engine-url`) and tools that share it.
    Engine(EngineArgs),
    /// What a change to journey manifests will do: lifecycle transitions, new versions, and
    /// whether the apiserver would reject it. Exit 0 admissible, 1 rejected, 2 usage error.
    Plan(PlanArgs),
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// The manifests before the change: a directory, a git revision, or - for stdin.
    #[arg(long)]
    pub base: String,
    /// The manifests after the change: a directory, a git revision, or - for stdin.
    #[arg(long)]
    pub head: String,
    /// text, markdown (for a pull-request comment) or json.
    #[arg(long, default_value = "text")]
    pub format: PlanFormat,
    /// The git repository revisions are read from.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Add live impact from the current kubeconfig's cluster (profiles inside, held or
    /// discarded by a pause, pauses close to expiry).
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the operator's data-plane URL, to count how many in-flight profiles a
    /// new global filter matches right now.
    #[arg(long, requires = "cluster", requires = "data_plane_token_file")]
    pub data_plane: Option<String>,
    /// The data plane's bearer token file (with --data-plane).
    #[arg(long, env = "JOURNEY_DATA_PLANE_TOKEN_FILE")]
    pub data_plane_token_file: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Directory of the embedded engine's SQLite database.
    #[arg(long, env = "JOURNEY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The embedded engine's SQLite page cache per connection (it has two), in MiB. Raise it
    /// for engines that hold millions of profiles; the default, SQLite's own, keeps the
    /// controller small (8 MiB cost 6.6 MiB of RSS with 10,000 journeys, BENCHMARKS.md).
    #[arg(long, env = "JOURNEY_ENGINE_CACHE_MIB", default_value_t = 2)]
    pub engine_cache_mib: u32,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "JOURNEY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Safety-net resync of every journey; the engine's change stream drives normal reactions.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resync: Duration,
    /// Minimum time between two profile-count updates of one journey's status.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub counts_refresh: Duration,
    /// How often the engine scheduler looks for due work when nothing woke it.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub scheduler_idle: Duration,
    /// How often the engine's gauges (due backlog, tick lag, outbox backlog) are read from the
    /// store for /metrics; each reading is O(journeys + backlog). `off` disables them.
    #[arg(long, default_value = "15s", value_parser = parse_refresh)]
    pub engine_metrics_refresh: Refresh,
    /// Log format: text or json.
    #[arg(long, env = "JOURNEY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Reporting instance for events and leader identity (e.g. the pod name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Address of /healthz, /readyz and /metrics ("off" to serve none).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub ops_addr: String,
    /// Address of the engine's HTTP data plane.
    #[arg(long, default_value = "0.0.0.0:8090")]
    pub data_plane_addr: SocketAddr,
    /// File holding the data plane's bearer token (e.g. a mounted Secret); without it the data
    /// plane is not served.
    #[arg(long, env = "JOURNEY_DATA_PLANE_TOKEN_FILE")]
    pub data_plane_token_file: Option<PathBuf>,
    /// Elect a leader on a coordination.k8s.io Lease: only the holder reconciles, runs the
    /// engine and serves the data plane.
    #[arg(long, default_value_t = false)]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    #[arg(long, default_value = "journey-operator")]
    pub lease_name: String,
    /// Seconds the lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Seconds before expiry that the holder renews.
    #[arg(long, default_value_t = 5)]
    pub lease_grace: u64,
    /// YAML file naming the webhook destinations journeys may use:
    /// `webhooks: {crm: {url: https://…, rateLimit: 50, credentialsFile: /etc/…/token}}`.
    /// Action steps name a destination; an unknown name stalls the journey.
    #[arg(long, env = "JOURNEY_DESTINATIONS")]
    pub destinations: Option<PathBuf>,
    /// Address of the v1 engine API over the embedded engine (served when --engine-token-file
    /// is given).
    #[arg(long, default_value = journey_operator::engine_api::DEFAULT_LISTEN)]
    pub engine_api_addr: SocketAddr,
    /// The engine credential: what the engine API accepts (embedded mode), or what the
    /// controller presents to a remote engine (with --engine-url). Distinct from the
    /// data-plane token.
    #[arg(long, env = "JOURNEY_ENGINE_TOKEN_FILE")]
    pub engine_token_file: Option<PathBuf>,
    /// Remote mode: the engine API of a `journey-operator engine` (https://…); nothing is
    /// embedded.
    #[arg(
        long,
        env = "JOURNEY_ENGINE_URL",
        requires = "engine_token_file",
        requires = "cluster_id"
    )]
    pub engine_url: Option<String>,
    /// The id of this cluster, sent to a remote engine with every call: an engine serves one
    /// cluster and refuses another's controller (e.g. the kube-system namespace's UID).
    #[arg(long, env = "JOURNEY_CLUSTER_ID", requires = "engine_url")]
    pub cluster_id: Option<String>,
    /// The CA certificate (PEM) that signed the remote engine's certificate.
    #[arg(long, env = "JOURNEY_ENGINE_CA", requires = "engine_url")]
    pub engine_ca: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS for every listener that serves data or commands (the data plane, the engine API).
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// PEM certificate chain (e.g. a mounted TLS Secret's tls.crt); read again when it changes.
    #[arg(long, env = "JOURNEY_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (tls.key); read again when it changes.
    #[arg(long, env = "JOURNEY_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Serve plain HTTP instead (loopback and tests only).
    #[arg(long, default_value_t = false)]
    pub insecure_plain_http: bool,
}

impl TlsArgs {
    fn transport(&self) -> anyhow::Result<journey_operator::serving::Transport> {
        Ok(journey_operator::serving::Transport::from_flags(
            self.tls_cert_file.clone(),
            self.tls_key_file.clone(),
            self.insecure_plain_http,
        )?)
    }
}

#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// Directory of the engine's SQLite database.
    #[arg(long, env = "JOURNEY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// SQLite page cache per connection, in MiB.
    #[arg(long, env = "JOURNEY_ENGINE_CACHE_MIB", default_value_t = 2)]
    pub engine_cache_mib: u32,
    /// Address of the v1 engine API.
    #[arg(long, default_value = journey_operator::engine_api::DEFAULT_LISTEN)]
    pub engine_api_addr: SocketAddr,
    /// The engine credential controllers present (distinct from the data-plane token).
    #[arg(long, env = "JOURNEY_ENGINE_TOKEN_FILE")]
    pub engine_token_file: PathBuf,
    /// Address of the data plane.
    #[arg(long, default_value = "0.0.0.0:8090")]
    pub data_plane_addr: SocketAddr,
    /// The data plane's bearer token file; without it the data plane is not served.
    #[arg(long, env = "JOURNEY_DATA_PLANE_TOKEN_FILE")]
    pub data_plane_token_file: Option<PathBuf>,
    /// Address of /healthz, /readyz and /metrics ("off" to serve none).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub ops_addr: String,
    /// How often the scheduler looks for due work when nothing woke it.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub scheduler_idle: Duration,
    /// How often the engine's gauges (due backlog, tick lag, outbox backlog) are read from the
    /// store for /metrics; each reading is O(journeys + backlog). `off` disables them.
    #[arg(long, default_value = "15s", value_parser = parse_refresh)]
    pub engine_metrics_refresh: Refresh,
    /// The webhook destinations (as for `run`).
    #[arg(long, env = "JOURNEY_DESTINATIONS")]
    pub destinations: Option<PathBuf>,
    #[arg(long, env = "JOURNEY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Test only: the clock moves only through `POST /v1/test/clock/advance`, which runs what
    /// became due before it answers; no scheduler runs in between (deterministic tests).
    #[arg(long, default_value_t = false)]
    pub virtual_clock: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags take the API's durations, plus milliseconds (`100ms`) for fine-grained intervals.
/// A refresh interval, or `off` (`None`). A newtype: clap reads an `Option` field as an
/// optional flag, not as a value that may say "none".
#[derive(Debug, Clone, Copy)]
pub struct Refresh(pub Option<Duration>);

fn parse_refresh(text: &str) -> Result<Refresh, String> {
    match text {
        "off" => Ok(Refresh(None)),
        _ => parse_duration(text).map(|d| Refresh(Some(d))),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let millis = text.strip_suffix("ms").and_then(|n| n.parse::<u64>().ok());
    millis
        .map(Duration::from_millis)
        .or_else(|| journey_operator::api::duration::parse_duration(text))
        .ok_or_else(|| format!("{text:?} is not a duration like 100ms, 30s, 5m or 1h"))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// glibc gives every thread that allocates concurrently its own malloc arena (up to eight per
/// core) and keeps freed memory in it. With 2,000 journeys heaptrack measured a 31 MB heap peak
/// while the controller's anonymous RSS was 65 MB; two arenas keep RSS close to the heap.
/// Must run before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn read_destinations(path: Option<&PathBuf>) -> anyhow::Result<DestinationConfig> {
    Ok(match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let config: DestinationConfig = serde_yaml::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            config
                .validate()
                .with_context(|| format!("checking {}", path.display()))?;
            config
        }
        None => DestinationConfig::default(),
    })
}

fn ops_addr(text: &str) -> anyhow::Result<Option<SocketAddr>> {
    Ok(match text {
        "off" => None,
        addr => Some(addr.parse().context("--ops-addr")?),
    })
}

fn run_engine(args: EngineArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let transport = args.tls.transport()?;
    let destinations = read_destinations(args.destinations.as_ref())?;
    let config = journey_operator::engine_service::EngineServiceConfig {
        setup: journey_operator::controller::runner::EngineSetup {
            data_dir: args.data_dir,
            cache_mib: args.engine_cache_mib,
            destinations,
            scheduler_idle: Some(args.scheduler_idle),
            engine_metrics_refresh: args.engine_metrics_refresh.0,
        },
        api: journey_operator::engine_api::EngineApiConfig {
            listen: args.engine_api_addr,
            token_file: args.engine_token_file.clone(),
            transport: transport.clone(),
            data_plane_token_file: args.data_plane_token_file.clone(),
            clock: None,
            metrics: None,
        },
        data_plane: args.data_plane_token_file.map(|token| DataPlaneConfig {
            transport,
            engine_token_file: Some(args.engine_token_file),
            ..DataPlaneConfig::new(args.data_plane_addr, token)
        }),
        ops_addr: ops_addr(&args.ops_addr)?,
        virtual_clock: args.virtual_clock,
    };
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()?;
    runtime.block_on(journey_operator::engine_service::serve(config))?;
    Ok(())
}

fn run_controller(args: RunArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let destinations = read_destinations(args.destinations.as_ref())?;
    let remote = args.engine_url.is_some();
    // Remote mode serves no data plane and no engine API; without either, `run` listens only
    // for its ops endpoints and needs no TLS.
    let serves =
        !remote && (args.data_plane_token_file.is_some() || args.engine_token_file.is_some());
    let transport = if serves {
        args.tls.transport()?
    } else {
        journey_operator::serving::Transport::PlainHttp
    };
    let mut known: std::collections::BTreeSet<String> =
        destinations.webhooks.keys().cloned().collect();
    known.insert(journey_operator::engine::destinations::RECORD.to_string());
    let config = RunConfig {
        data_dir: args.data_dir,
        engine_cache_mib: args.engine_cache_mib,
        namespace: args.namespace,
        controller: ControllerConfig {
            resync: args.resync,
            counts_refresh: args.counts_refresh,
            destinations: Some(known),
        },
        scheduler_idle: args.scheduler_idle,
        engine_metrics_refresh: args.engine_metrics_refresh.0,
        instance: args.instance.clone(),
        ops_addr: ops_addr(&args.ops_addr)?,
        data_plane: args
            .data_plane_token_file
            .clone()
            .map(|token| DataPlaneConfig {
                transport: transport.clone(),
                engine_token_file: args.engine_token_file.clone(),
                ..DataPlaneConfig::new(args.data_plane_addr, token)
            }),
        engine_api: match (&args.engine_url, &args.engine_token_file) {
            (None, Some(token)) => Some(journey_operator::engine_api::EngineApiConfig {
                listen: args.engine_api_addr,
                token_file: token.clone(),
                transport: transport.clone(),
                data_plane_token_file: args.data_plane_token_file.clone(),
                clock: None,
                metrics: None,
            }),
            _ => None,
        },
        remote: match (&args.engine_url, &args.engine_token_file) {
            (Some(url), Some(token)) => Some(journey_engine_api::ClientConfig {
                url: url.clone(),
                ca_file: args.engine_ca.clone(),
                token_file: token.clone(),
                timeout: Duration::from_secs(10),
                cluster_id: args.cluster_id.clone(),
            }),
            _ => None,
        },
        leader: args.leader_election.then(|| LeaderConfig {
            namespace: args.lease_namespace.unwrap_or_else(|| "default".into()),
            lease_name: args.lease_name,
            identity: args
                .instance
                .unwrap_or_else(|| format!("journey-operator-{}", std::process::id())),
            duration: args.lease_duration,
            grace: args.lease_grace,
        }),
        destinations,
    };
    limit_malloc_arenas();
    // The engine's SQLite store has one writer and one reader connection, so more blocking
    // threads than this only wait on its locks while each keeps a stack and a malloc arena.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()?;
    runtime.block_on(journey_operator::controller::runner::run(config))?;
    Ok(())
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd => {
            let yaml = journey_operator::api::crd::to_yaml().context("rendering the CRDs")?;
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(())
        }
        Command::Run(args) => run_controller(*args),
        Command::Engine(args) => run_engine(args),
        Command::Plan(args) => plan(args),
    }
}

fn plan(args: PlanArgs) -> anyhow::Result<()> {
    use journey_operator::plan::{self, load, render};
    if args.base == "-" && args.head == "-" {
        eprintln!("only one of --base and --head can read standard input");
        std::process::exit(2);
    }
    let read = |source: &str| match load::journeys(source, &args.repo) {
        Ok(journeys) => journeys,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let base = read(&args.base);
    let head = read(&args.head);
    let mut result = plan::plan(&base, &head, &Default::default());
    if args.cluster {
        let runtime = tokio::runtime::Runtime::new()?;
        let annotated: anyhow::Result<()> = runtime.block_on(async {
            let client = kube::Client::try_default().await?;
            let data_plane = args
                .data_plane
                .clone()
                .zip(args.data_plane_token_file.clone())
                .map(|(url, token_file)| plan::live::DataPlaneAccess { url, token_file });
            plan::live::annotate(
                &mut result,
                &client,
                &plan::head_states(&head),
                data_plane.as_ref(),
            )
            .await?;
            Ok(())
        });
        if let Err(e) = annotated {
            eprintln!("--cluster: {e}");
            std::process::exit(2);
        }
    }
    let out = match args.format {
        PlanFormat::Text => render::text(&result),
        PlanFormat::Markdown => render::markdown(&result),
        PlanFormat::Json => render::json(&result),
    };
    print!("{out}");
    std::io::stdout().flush()?;
    std::process::exit(if result.admissible() { 0 } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand's arguments parse into their types (clap checks a field's type only
    /// when it reads the matches, so a wrong pairing of type and parser shows only here).
    #[test]
    fn the_subcommands_parse_with_their_defaults_and_flags() {
        let parse =
            |args: &[&str]| Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let Command::Run(run) = parse(&["journey-operator", "run"]).command else {
            panic!("run")
        };
        assert_eq!(run.engine_metrics_refresh.0, Some(Duration::from_secs(15)));
        let Command::Run(run) = parse(&[
            "journey-operator",
            "run",
            "--engine-metrics-refresh=off",
            "--resync=1h",
        ])
        .command
        else {
            panic!("run")
        };
        assert!(run.engine_metrics_refresh.0.is_none());
        let Command::Engine(engine) = parse(&[
            "journey-operator",
            "engine",
            "--engine-token-file=/t",
            "--engine-metrics-refresh=2s",
        ])
        .command
        else {
            panic!("engine")
        };
        assert_eq!(
            engine.engine_metrics_refresh.0,
            Some(Duration::from_secs(2))
        );
        parse(&["journey-operator", "crd"]);
        assert!(
            Cli::try_parse_from(["journey-operator", "run", "--engine-metrics-refresh=soon"])
                .is_err()
        );
    }
}
