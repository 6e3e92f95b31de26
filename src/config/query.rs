//! `[query]`: limits of the PromQL engine.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How far back an instant selector looks for a sample (ms).
    pub lookback: i64,
    pub timeout: Duration,
    pub max_samples: usize,
    pub max_concurrency: usize,
}
impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lookback: 300_000,
            timeout: Duration::from_secs(30),
            max_samples: 50_000_000,
            max_concurrency: 20,
        }
    }
}
