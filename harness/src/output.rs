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
        println!("{s}");
    } else {
        let text = human(value);
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
    }
    Ok(())
}

/// The result of a command: a strata error prints as one line.
pub type CmdResult<T> = std::result::Result<T, strata_runtime::Error>;
