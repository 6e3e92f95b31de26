//! Helpers shared by the benchmarks: a seeded generator, directory sizes, free ports.
#![allow(dead_code)]

/// xorshift64: fast, seeded, good enough for load generation.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Bytes of every file below `p`.
pub fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The number after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `sightline` binary in its own process on free ports, killed on drop. The built-in
/// samplers are off unless `env` turns them on: only what is measured runs.
pub struct Sightline {
    pub child: std::process::Child,
    pub http: u16,
    pub otlp_http: u16,
}

impl Sightline {
    /// Starts it on `dir` and waits until the main port answers.
    pub fn spawn(dir: &std::path::Path, env: &[(&str, &str)]) -> Sightline {
        let (http, otlp_http, grpc) = (free_port(), free_port(), free_port());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("--data-dir")
            .arg(dir)
            .arg("--http")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--otlp-http")
            .arg(format!("127.0.0.1:{otlp_http}"))
            .arg("--otlp-grpc")
            .arg(format!("127.0.0.1:{grpc}"))
            .env("SIGHTLINE_LOG_LEVEL", "warn")
            .env("SIGHTLINE_HOST_ENABLED", "false")
            .env("SIGHTLINE_GPU_ENABLED", "false")
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        let s = Sightline {
            child,
            http,
            otlp_http,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "sightline did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        s
    }
}

impl Drop for Sightline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
