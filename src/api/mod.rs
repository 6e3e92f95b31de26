//! Query APIs on the main listener: the Jaeger-compatible trace API (`jaeger.rs`) and Sightline's
//! log search (`logs.rs`). Each protocol has its own router and its own error envelope; status
//! codes come from [`crate::error::ErrorCode`].

pub mod jaeger;
pub mod logs;
pub mod params;
pub mod prom;
pub mod query;
pub mod selector;

use crate::traces::TraceStore;

/// What the query routers read from.
#[derive(Clone)]
pub struct ApiState {
    pub store: TraceStore,
}
