//! The memory budget for accepted-but-not-stored data: an export reserves its encoded size before
//! it is queued for the store and gives it back when the store answers. Past the budget, exports
//! are refused with a retryable error (HTTP 429 + `Retry-After`, gRPC `UNAVAILABLE` + `RetryInfo`),
//! so a flood slows clients down instead of growing memory without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ExportError;
use crate::error::ErrorCode;
use crate::telemetry::Metrics;

pub struct Budget {
    limit: usize,
    used: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// Returns its bytes to the budget when dropped.
pub struct Permit {
    bytes: usize,
    used: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Budget {
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> Budget {
        Budget {
            limit,
            used: Arc::new(AtomicUsize::new(0)),
            metrics,
        }
    }

    pub fn reserve(&self, bytes: usize) -> Result<Permit, ExportError> {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(bytes);
            // One export larger than the whole budget still gets through when nothing else waits.
            if next > self.limit && current > 0 {
                self.metrics
                    .refused_requests
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ExportError::new(
                    ErrorCode::Overloaded,
                    format!(
                        "over the ingest memory budget ({} bytes waiting for the store): retry later",
                        current
                    ),
                ));
            }
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.metrics
            .queue_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(Permit {
            bytes,
            used: self.used.clone(),
            metrics: self.metrics.clone(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.metrics
            .queue_bytes
            .fetch_sub(self.bytes as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_recovers() {
        let b = Budget::new(100, Arc::new(Metrics::default()));
        let a = b.reserve(60).unwrap();
        let err = b.reserve(60).err().unwrap();
        assert_eq!(err.code, ErrorCode::Overloaded);
        drop(a);
        let _big = b.reserve(500).unwrap();
        assert!(b.reserve(1).is_err());
    }
}
