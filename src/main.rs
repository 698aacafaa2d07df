//! Entry point: configuration, telemetry, then the chosen subcommand.

use std::process::ExitCode;

use clap::Parser;
use tessera::cli::{self, Cli};
use tessera::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    tessera::telemetry::init(&config.log);
    let env: Vec<(String, String)> = std::env::vars().collect();
    for variable in tessera::config::unknown_variables(&env) {
        tracing::warn!(
            %variable,
            "unknown setting ignored: no setting has this name (a typo?); see config/tessera.toml"
        );
    }
    match actix_web::rt::System::new().block_on(cli::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}
