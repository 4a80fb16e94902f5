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
            // clap's message up to its usage block, on one line: the first line and the
            // argument names listed below it ("...were not provided: <TARGET>").
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let msg = msg.join(" ");
            let usage = text
                .lines()
                .find_map(|l| l.strip_prefix("Usage: "))
                .map(|u| format!(" (usage: {})", u.trim()))
                .unwrap_or_default();
            eprintln!(
                "strata: error: {}{usage}",
                msg.trim_start_matches("error: ").trim()
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
