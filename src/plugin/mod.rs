//! `kubectl journey`: the kubectl plugin, a second name of the operator binary. Invoked as
//! `kubectl-journey` (kubectl runs `kubectl-journey` from PATH for `kubectl journey …`) or as
//! `journey-operator kubectl-journey …`.

mod args;
mod commands;
mod gitops;
mod render;
mod selector;

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

use args::{HoldCommand, PluginCli, PluginCommand};
use commands::Ctx;

pub const NAME: &str = "kubectl-journey";

/// The plugin's arguments when the binary runs as the plugin: named `kubectl-journey`, or
/// given `kubectl-journey` as its first argument.
pub fn invoked_as_plugin(argv: &[OsString]) -> Option<Vec<OsString>> {
    let program = argv.first().map(Path::new)?;
    let stem = program.file_stem().and_then(|s| s.to_str());
    if stem == Some(NAME) {
        return Some(argv.to_vec());
    }
    (argv.get(1).and_then(|a| a.to_str()) == Some(NAME)).then(|| argv[1..].to_vec())
}

/// Runs the plugin; the process's exit code (0 ok, 1 error with one line on stderr).
pub fn main(argv: Vec<OsString>) -> i32 {
    let cli = match PluginCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("error: {}", message.replace('\n', " "));
            1
        }
    }
}

async fn connect(cli: &PluginCli) -> anyhow::Result<Ctx> {
    let options = kube::config::KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match kube::Config::from_kubeconfig(&options).await {
        Ok(config) => config,
        // No kubeconfig at all: in a pod, the service account's.
        Err(kubeconfig_error) if cli.context.is_none() => kube::Config::incluster()
            .map_err(|_| anyhow::anyhow!("reading the kubeconfig: {kubeconfig_error}"))?,
        Err(e) => anyhow::bail!("reading the kubeconfig: {e}"),
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("connecting to the cluster: {e}"))?;
    Ok(Ctx { client, namespace })
}

async fn run(cli: PluginCli) -> anyhow::Result<()> {
    let ctx = connect(&cli).await?;
    match cli.command {
        PluginCommand::Get(args) => commands::get(&ctx, args).await,
        PluginCommand::Describe(args) => commands::describe(&ctx, args).await,
        PluginCommand::Pause(args) => commands::pause(&ctx, args).await,
        PluginCommand::Resume(args) => {
            commands::set_state(&ctx, args, "Published", "resumed").await
        }
        PluginCommand::Close(args) => commands::set_state(&ctx, args, "Closed", "closed").await,
        PluginCommand::Stop(args) => commands::stop(&ctx, args).await,
        PluginCommand::Restart(args) => commands::restart(&ctx, args).await,
        PluginCommand::Run(args) => commands::run(&ctx, args).await,
        PluginCommand::Hold(HoldCommand::Create(args)) => commands::hold_create(&ctx, args).await,
        PluginCommand::Hold(HoldCommand::List(args)) => commands::hold_list(&ctx, args).await,
        PluginCommand::Hold(HoldCommand::Release(args)) => commands::hold_release(&ctx, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_plugin_runs_under_its_own_name_or_as_a_subcommand() {
        assert!(invoked_as_plugin(&os(&["/usr/local/bin/kubectl-journey", "get"])).is_some());
        assert_eq!(
            invoked_as_plugin(&os(&["journey-operator", "kubectl-journey", "get"])),
            Some(os(&["kubectl-journey", "get"]))
        );
        assert!(invoked_as_plugin(&os(&["journey-operator", "run"])).is_none());
        assert!(invoked_as_plugin(&os(&[])).is_none());
    }

    #[test]
    fn bad_arguments_are_usage_errors_not_panics() {
        let parse = |a: &[&str]| PluginCli::try_parse_from(os(a));
        assert!(parse(&["kubectl-journey", "pause", "j", "--reason", "x"]).is_ok());
        assert!(
            parse(&[
                "kubectl-journey",
                "pause",
                "j",
                "--mode",
                "Sometimes",
                "--reason",
                "x"
            ])
            .is_err()
        );
        assert!(parse(&["kubectl-journey", "pause", "--reason", "x"]).is_err());
        assert!(
            parse(&[
                "kubectl-journey",
                "pause",
                "j",
                "-l",
                "a=b",
                "--reason",
                "x"
            ])
            .is_err()
        );
        assert!(parse(&["kubectl-journey", "get", "-A", "-n", "x"]).is_ok());
        assert!(parse(&["kubectl-journey", "run", "j", "--full"]).is_ok());
        assert!(
            parse(&[
                "kubectl-journey",
                "hold",
                "create",
                "h",
                "-l",
                "a=b",
                "--reason",
                "r",
                "--duration",
                "2h"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "kubectl-journey",
                "hold",
                "create",
                "h",
                "-l",
                "a=b",
                "--reason",
                "r",
                "--duration",
                "2h",
                "--namespace-selector",
                "x=y"
            ])
            .is_err()
        );
        assert_eq!(main(os(&["kubectl-journey", "nonsense"])), 1);
    }
}
