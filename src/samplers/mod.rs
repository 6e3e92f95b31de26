//! Samplers: sources of metrics that Sightline pulls itself. `scrape` pulls Prometheus
//! exposition endpoints (`exposition` parses them). Host (sysinfo) and GPU (NVML) samplers are
//! their own pieces of work and not built yet.

pub mod exposition;
pub mod scrape;
