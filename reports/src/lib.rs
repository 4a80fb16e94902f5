//! Charts and HTML/Markdown reports built from criterion's output and strata result records.
