//! Printing: human text, or one JSON document with `--json`.

use serde::Serialize;

/// Prints `value` as JSON when `json`, else the text `human` makes.
pub fn emit<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> CmdResult<()> {
    if json {
        let s = serde_json::to_string_pretty(value)
            .map_err(|e| strata_runtime::Error::Usage(format!("JSON output: {e}")))?;
        print_out(&format!("{s}\n"));
    } else {
        let text = human(value);
        if !text.is_empty() {
            print_out(&format!("{}\n", text.trim_end()));
        }
    }
    Ok(())
}

/// Writes `text` to stdout. When the reader has gone (`strata --json layer ls | head -c
/// 10`), strata ends quietly with status 141, as a process SIGPIPE killed would (128 + 13):
/// no panic, no message. Any other failure to write (ENOSPC on a redirected stdout) is one
/// line naming stdout, exit 1.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("strata: error: stdout: write output: {e}");
            std::process::exit(1);
        }
    }
}

/// The result of a command: a strata error prints as one line.
pub type CmdResult<T> = std::result::Result<T, strata_runtime::Error>;
