//! The three OTLP signals, one type for ingest, forwarding, the trace store and the counters.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Traces = 0,
    Metrics = 1,
    Logs = 2,
}

impl Signal {
    /// Every signal, in index order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// 0, 1, 2: for per-signal arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name in OTLP paths (`/v1/traces`), config keys, directories and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_name_agree_with_all() {
        for (i, s) in Signal::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        let names: Vec<_> = Signal::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["traces", "metrics", "logs"]);
    }
}
