//! `prometheus.yml` as `[scrape] prometheus_config` reads it (the whole file: global, jobs,
//! relabel rules, discovery configs) and the relabeler: the input's first line is a label set
//! (`name=value,...`), the rest a `prometheus.yml`; every relabel rule of every job is applied
//! to the label set, target rules as a target, metric rules as a sample. Also the file and HTTP
//! discovery decoders on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::scrape::config::parse;
use sightline::scrape::discovery::{parse_groups, parse_http_answer};
use sightline::scrape::relabel::{LabelMap, process};
use sightline::scrape::target::{discovered, populate};

fuzz_target!(|data: &[u8]| {
    let _ = parse_groups("x.json", data);
    let _ = parse_groups("x.yml", data);
    let _ = parse_http_answer("http://h/sd", "application/json", data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut labels = LabelMap::new();
    for pair in first.split(',') {
        if let Some((k, v)) = pair.split_once('=')
            && !v.is_empty()
        {
            labels.insert(k.to_string(), v.to_string());
        }
    }
    let Ok(cfg) = parse(rest, std::path::Path::new("/")) else {
        return;
    };
    for job in &cfg.jobs {
        let _ = process(labels.clone(), &job.relabel);
        let _ = process(labels.clone(), &job.metric_relabel);
        for g in &job.static_configs {
            for t in &g.targets {
                if let sightline::scrape::target::Populated::Active(spec) =
                    populate(discovered(g, t), job)
                {
                    let _ = spec.url(job);
                }
            }
        }
    }
});
