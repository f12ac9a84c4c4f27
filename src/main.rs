use clap::Parser;

mod cli;
mod plugin;

fn main() -> anyhow::Result<()> {
    journey_operator::tls::ensure_crypto_provider();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(plugin_args) = plugin::invoked_as_plugin(&argv) {
        std::process::exit(plugin::main(plugin_args));
    }
    let args = cli::Cli::parse_from(argv);
    cli::run(args)
}
