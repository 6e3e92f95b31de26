//! Sizes of what the stores keep on disk, for their gauges and retention by size.

use std::path::Path;

/// Bytes of the regular files directly in `path` (not recursive); 0 when it cannot be read.
pub fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
