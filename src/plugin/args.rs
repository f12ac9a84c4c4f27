//! The plugin's command line: `kubectl journey <command>`.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-journey",
    bin_name = "kubectl journey",
    version,
    about = "Inspect and steer Journeys and emergency holds (journey.dev)"
)]
pub struct PluginCli {
    /// The namespace (default: the kubeconfig context's, else "default").
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// List journeys: phase, profiles inside and held, the holds keeping them paused.
    Get(GetArgs),
    /// A journey's conditions, pause, counts, lifecycle timeline and recent events.
    Describe(DescribeArgs),
    /// Pause journeys (spec.state=Paused with a mode and a reason).
    Pause(PauseArgs),
    /// Resume paused journeys (spec.state=Published).
    Resume(EditArgs),
    /// Close journeys to new entrances; profiles inside finish (spec.state=Closed).
    Close(EditArgs),
    /// Stop journeys at once; terminal (spec.state=Stopped). Asks for the name unless --yes.
    Stop(StopArgs),
    /// Ask the controller to restart a journey: every contact begins again.
    Restart(RequestArgs),
    /// Ask the controller to run a journey's audience now (--full: ignoring incremental state).
    Run(RunArgs),
    /// Emergency holds: pause matching journeys whatever their spec (and Git) says.
    #[command(subcommand)]
    Hold(HoldCommand),
}

#[derive(Args, Debug)]
pub struct GetArgs {
    pub name: Option<String>,
    /// A label selector (kubectl syntax).
    #[arg(short = 'l', long, conflicts_with = "name")]
    pub selector: Option<String>,
    /// Journeys of every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    pub name: String,
}

/// One journey by name, or those a label selector matches.
#[derive(Args, Debug, Clone)]
#[group(id = "target", required = true, multiple = false, args = ["name", "selector"])]
pub struct Target {
    pub name: Option<String>,
    /// A label selector (kubectl syntax) instead of a name.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    #[command(flatten)]
    pub target: Target,
    /// A pull request or commit explaining the change (annotation journey.dev/change-ref).
    #[arg(long)]
    pub change_ref: Option<String>,
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    #[command(flatten)]
    pub edit: EditArgs,
    /// Hold: profiles wait at their next action step; Discard: they are dropped there;
    /// EntryOnly: only entrance stops.
    #[arg(long, default_value = "Hold", ignore_case = true)]
    pub mode: Mode,
    /// Why; shown in status and events.
    #[arg(long)]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    #[command(flatten)]
    pub edit: EditArgs,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    pub name: String,
    #[arg(long)]
    pub change_ref: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Read the whole audience, ignoring incremental state.
    #[arg(long)]
    pub full: bool,
}

#[derive(Subcommand, Debug)]
pub enum HoldCommand {
    /// Create a JourneyHold (or, with --all-namespaces, a ClusterJourneyHold).
    Create(HoldCreateArgs),
    /// List holds: phase, mode, journeys held, expiry, reason, creator.
    List(HoldListArgs),
    /// Release a hold (delete it): its journeys go back to what their spec says.
    Release(HoldReleaseArgs),
}

#[derive(Args, Debug)]
pub struct HoldCreateArgs {
    pub name: String,
    /// Which journeys (kubectl label-selector syntax, e.g. team=growth,tier!=test).
    #[arg(short = 'l', long)]
    pub selector: String,
    #[arg(long)]
    pub reason: String,
    /// How long the hold lasts (e.g. 30m, 2h; at most 336h).
    #[arg(long)]
    pub duration: String,
    #[arg(long, default_value = "Hold", ignore_case = true)]
    pub mode: Mode,
    /// A ClusterJourneyHold over the namespaces --namespace-selector matches (all without it).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// With --all-namespaces: which namespaces (a label selector over Namespaces).
    #[arg(long, requires = "all_namespaces")]
    pub namespace_selector: Option<String>,
    #[arg(long)]
    pub change_ref: Option<String>,
}

#[derive(Args, Debug)]
pub struct HoldListArgs {
    /// Holds of every namespace, and the cluster holds.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The cluster holds (ClusterJourneyHold) too.
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Args, Debug)]
pub struct HoldReleaseArgs {
    pub name: String,
    /// Release a ClusterJourneyHold.
    #[arg(long)]
    pub cluster: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    #[value(name = "Hold")]
    Hold,
    #[value(name = "Discard")]
    Discard,
    #[value(name = "EntryOnly")]
    EntryOnly,
}

impl Mode {
    pub fn pause_mode(self) -> journey_operator::api::journey::PauseMode {
        use journey_operator::api::journey::PauseMode;
        match self {
            Mode::Hold => PauseMode::Hold,
            Mode::Discard => PauseMode::Discard,
            Mode::EntryOnly => PauseMode::EntryOnly,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hold => "Hold",
            Mode::Discard => "Discard",
            Mode::EntryOnly => "EntryOnly",
        }
    }
}
