use clap::Parser;

mod cli;

fn main() -> anyhow::Result<()> {
    journey_operator::tls::ensure_crypto_provider();
    let args = cli::Cli::parse();
    cli::run(args)
}
