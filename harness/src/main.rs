//! `strata`: the command line over strata-runtime. Thin: parsing, calling the library,
//! printing. Every error is one line `strata: error: ...` and exit status 1.

mod check;
mod cli;
mod cmd;
mod kernel;
mod output;
mod runner;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "strata: error: {}",
                first.trim_start_matches("error: ").trim()
            );
            return ExitCode::from(1);
        }
    };
    match cmd::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata: error: {e}");
            ExitCode::from(1)
        }
    }
}
