//! Grafana dashboard JSON (uploaded or provisioned, untrusted): reading the file (size, shape,
//! the pre-5.0 row layout), laying out and rendering every panel (repeats, legacy panels,
//! queries interpolated with a few variables), sanitising text panels, and Grafana's time and
//! interval strings must never panic. The first line of the input is a `from` time, the rest
//! the dashboard.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::dashboards::interpolate::{Default, VarValue, Vars, interpolate};
use sightline::dashboards::render::{Frame, sections};
use sightline::dashboards::vars::Resolved;
use sightline::dashboards::{model, text, time};

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let first = String::from_utf8_lossy(first);
    let now = 1_700_000_000_000;
    let _ = time::parse(&first, now, false);
    let _ = time::parse(&first, now, true);
    let _ = time::parse_interval(&first);
    let _ = text::render(&first, "markdown");
    let mut vars = Vars::new();
    vars.insert("job".into(), VarValue::single("node"));
    vars.insert(
        "gpu".into(),
        VarValue {
            values: vec!["0".into(), "1.5".into(), "a|b".into()],
            texts: vec!["0".into(), "1.5".into(), "a|b".into()],
            multi: true,
            custom_all: None,
        },
    );
    let _ = interpolate(&first, &vars, Default::Prometheus);
    let Ok(d) = model::parse(rest) else { return };
    let _ = model::uid_of(&d);
    let r = Resolved {
        values: vars,
        ..Resolved::default()
    };
    let _ = sections(&d, &r, Frame { from_ms: now - 3_600_000, to_ms: now });
});
