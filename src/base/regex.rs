//! Regular expressions from untrusted text (queries, templates, configuration), bounded so a
//! hostile pattern cannot take memory or time: the `regex` crate runs in linear time, and the
//! compiled program and its lazy DFA are capped here. Errors read as Go's `regexp` errors begin
//! ("error parsing regexp: ...").

use regex::Regex;

/// Bytes a compiled program (and its DFA cache) may take.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub fn compile_bounded(re: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("error parsing regexp: {}", last_line(&e.to_string())))
}

/// The `regex` crate's message without its drawing of the pattern.
fn last_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}
