//! Log file lines (`[[logs.files]]` read files anyone on the host can write): the CRI and
//! Docker json-file unwrappers and the field scan (time, level, trace ids) of JSON and logfmt
//! lines; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::logfiles::format::{cri, docker, fields, logfmt_fields};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = cri(&text);
    let _ = docker(&text);
    let _ = fields(&text);
    let _ = logfmt_fields(&text);
    let _ = sightline::logfiles::path_labels(std::path::Path::new(text.as_ref()));
});
