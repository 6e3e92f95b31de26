//! Rule files (`[rules] files`, `sightline check rules`, `POST /-/reload`): YAML, PromQL and
//! Go templates from files users and tools write.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sightline::rules::file::parse("fuzz.yml", s);
    }
});
