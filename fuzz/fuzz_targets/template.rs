//! Alert templates: parsed, then executed against an alert's data (bounded in steps and
//! output); neither may panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sightline::template::{Env, Limits, NoQuery, Template, alert_data, alert_text};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Template::parse("__alert_fuzz", &alert_text(s)) else {
        return;
    };
    let labels = BTreeMap::from([("instance".to_string(), "a:1".to_string())]);
    let d = alert_data(&labels, &BTreeMap::new(), "http://x", 1.5);
    let env = Env {
        query: &NoQuery,
        external_url: "http://x",
        path_prefix: "",
        limits: Limits {
            max_steps: 10_000,
            max_output_bytes: 1 << 16,
        },
        defs: None,
        escape_html: false,
        line: None,
    };
    let _ = t.execute(&d, &env);
});
