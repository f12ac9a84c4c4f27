//! Command-line entry points.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use journey_operator::control_plane::{ControlPlaneConfig, LocalControlPlane, vendored_etcd};

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
    /// Run a local control plane (etcd + kube-apiserver) in the foreground until interrupted.
    ControlPlane(ControlPlaneArgs),
}

#[derive(clap::Args, Debug)]
pub struct ControlPlaneArgs {
    /// Directory for certificates, kubeconfig, etcd data, logs and the audit log.
    #[arg(long)]
    pub dir: PathBuf,
    /// The kube-apiserver binary (hack/build-kube-apiserver.sh builds and caches it).
    #[arg(long, env = "KUBE_APISERVER")]
    pub kube_apiserver: PathBuf,
    /// The etcd binary (default: the one shipped by the etcd-bin-vendored crate).
    #[arg(long, env = "ETCD")]
    pub etcd: Option<PathBuf>,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd => {
            let yaml = journey_operator::api::crd::to_yaml().context("rendering the CRDs")?;
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(())
        }
        Command::ControlPlane(args) => control_plane(args),
    }
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
    let config = ControlPlaneConfig {
        dir: args.dir.clone(),
        kube_apiserver: args.kube_apiserver.clone(),
        etcd: etcd.clone(),
    };
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

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if let Some((name, status)) = plane.exited() {
                        anyhow::bail!("{name} exited unexpectedly ({status}); see its log in {}", args.dir.display());
                    }
                }
            }
        }
    });
    plane.stop();
    outcome
}
