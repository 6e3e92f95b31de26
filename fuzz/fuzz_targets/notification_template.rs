//! Notification templates (Alertmanager's dialect: define, template, block, methods on the
//! data, HTML mode) executed against a notification's data; bounded, never a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sightline::alertmanager::alert::Alert;
use sightline::template::TemplateSet;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let mut set = TemplateSet::default();
    let _ = set.add("fuzz.tmpl", s);
    let a = Alert {
        labels: BTreeMap::from([("alertname".to_string(), "X".to_string()), ("job".to_string(), "j".to_string())]),
        annotations: BTreeMap::from([("summary".to_string(), "<b>".to_string())]),
        starts_at: 1,
        ends_at: 0,
        generator_url: "http://g".into(),
        updated_at: 1,
        timeout: false,
    };
    let gl = BTreeMap::from([("alertname".to_string(), "X".to_string())]);
    let d = sightline::alertmanager::templates::data("r", &gl, &[a], "http://am", 2);
    let _ = set.execute(s, &d, false);
    let _ = set.execute(s, &d, true);
});
