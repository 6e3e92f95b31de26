//! Metrics store benchmarks (not tests), issue 3. `cargo bench --bench tsdb -- <mode> [options]`:
//!
//! - `append [--hosts 40] [--rounds 500] [--writers 2]`: node-exporter-like series (about 480 per
//!   host) appended through the engine API (`Tsdb::append_blocking`, durable acknowledgement),
//!   one batch per host and scrape round; reports samples/s and samples per CPU-second (the whole
//!   process, and the store's writer thread alone).
//! - `memory [--series 200000] [--samples 480]`: builds that many active series with that many
//!   samples each (15 s apart) through the engine API, then reports the process's RSS growth
//!   per series and the head's own accounting.
//! - `disk [--hosts 8] [--hours 12]`: writes the same node-exporter-like data as an OpenMetrics
//!   file, has `promtool tsdb create-blocks-from openmetrics` make Prometheus blocks of it, and
//!   writes Sightline blocks of it (2 h blocks, as promtool makes), then compacts them; reports
//!   bytes per sample of both, and the ratio.
//! - `otlp [--seconds 20] [--concurrency 2] [--points 10000]`: the `sightline` release binary in
//!   its own process, OTLP/HTTP protobuf gauge exports of `--points` points each from
//!   `--concurrency` clients, each answered after its samples are durable; reports samples/s.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{Rng, Sightline, arg, dir_size};
use sightline::tsdb::{Batch, Labels, Tsdb, TsdbConfig, TsdbCounters};

// ---------------------------------------------------------------------------------------------
// A node-exporter-like data generator.

#[derive(Clone)]
enum Model {
    Const(f64),
    /// A counter with `dec` decimals, increasing by [lo, hi) in a scrape with probability `p`.
    Counter {
        v: f64,
        lo: f64,
        hi: f64,
        dec: i32,
        p: f64,
    },
    /// A gauge random walk in multiples of `quantum`, within [min, max], moving with
    /// probability `p` per scrape.
    Walk {
        v: f64,
        quantum: f64,
        max_steps: u64,
        min: f64,
        max: f64,
        p: f64,
    },
    /// Durations in [lo, hi) measured by the exporter: nanoseconds as seconds, the way Go's
    /// `time.Duration.Seconds()` gives them.
    Noise {
        lo: f64,
        hi: f64,
    },
    /// The scrape time in seconds with nanosecond digits (node_time_seconds).
    Clock,
}

impl Model {
    fn step(&mut self, rng: &mut Rng, t_ms: i64) -> f64 {
        match self {
            Model::Const(v) => *v,
            Model::Counter {
                v,
                lo,
                hi,
                dec,
                p: prob,
            } => {
                if rng.f() < *prob {
                    let p = 10f64.powi(*dec);
                    *v = ((*v * p).round() + ((*lo + rng.f() * (*hi - *lo)) * p).round()) / p;
                }
                *v
            }
            Model::Walk {
                v,
                quantum,
                max_steps,
                min,
                max,
                p: prob,
            } => {
                if rng.f() >= *prob {
                    return *v;
                }
                let steps = rng.below(2 * *max_steps + 1) as f64 - *max_steps as f64;
                let p = if *quantum < 1.0 {
                    (1.0 / *quantum).round()
                } else {
                    1.0
                };
                let nv = ((*v + steps * *quantum) * p).round() / p;
                if nv >= *min && nv <= *max {
                    *v = nv;
                }
                *v
            }
            Model::Noise { lo, hi } => ((*lo + rng.f() * (*hi - *lo)) * 1e9).round() / 1e9,
            Model::Clock => t_ms as f64 / 1000.0 + rng.below(1_000_000) as f64 * 1e-9,
        }
    }
}

struct SeriesGen {
    labels: Labels,
    model: Model,
}

fn host_series(host: usize, rng: &mut Rng) -> Vec<SeriesGen> {
    let inst = format!("host-{host:04}:9100");
    let mut out = Vec::new();
    let mut add = |name: &str, extra: &[(&str, String)], model: Model| {
        let mut pairs: Vec<(String, String)> = vec![
            ("__name__".into(), name.into()),
            ("job".into(), "node".into()),
            ("instance".into(), inst.clone()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        out.push(SeriesGen {
            labels: Labels::from_pairs(pairs),
            model,
        });
    };
    for cpu in 0..8 {
        for (mode, lo, hi, p) in [
            ("idle", 12.0, 15.0, 1.0),
            ("iowait", 0.01, 0.2, 0.5),
            ("irq", 0.01, 0.02, 0.3),
            ("nice", 0.01, 0.02, 0.02),
            ("softirq", 0.01, 0.05, 0.5),
            ("steal", 0.0, 0.0, 0.0),
            ("system", 0.05, 0.6, 1.0),
            ("user", 0.1, 2.5, 1.0),
        ] {
            add(
                "node_cpu_seconds_total",
                &[("cpu", cpu.to_string()), ("mode", mode.into())],
                Model::Counter {
                    v: (1e7 * rng.f()).round() / 100.0,
                    lo,
                    hi,
                    dec: 2,
                    p,
                },
            );
        }
    }
    for i in 0..45 {
        let name = format!("node_memory_M{i:02}_bytes");
        let base = (rng.below(1 << 22) * 4096) as f64;
        let m = if i % 2 == 0 {
            Model::Const(base)
        } else {
            Model::Walk {
                v: base,
                quantum: 4096.0,
                max_steps: 16,
                min: 0.0,
                max: 1e13,
                p: 0.6,
            }
        };
        add(&name, &[], m);
    }
    for (j, mp) in ["/", "/boot", "/home", "/var", "/run", "/data"]
        .iter()
        .enumerate()
    {
        let l = [
            ("device", format!("/dev/sda{j}")),
            ("fstype", "ext4".to_string()),
            ("mountpoint", mp.to_string()),
        ];
        let size = (rng.below(1 << 26) * 4096) as f64;
        add("node_filesystem_size_bytes", &l, Model::Const(size));
        add(
            "node_filesystem_avail_bytes",
            &l,
            Model::Walk {
                v: size / 2.0,
                quantum: 4096.0,
                max_steps: 8,
                min: 0.0,
                max: size,
                p: 0.3,
            },
        );
        add(
            "node_filesystem_free_bytes",
            &l,
            Model::Walk {
                v: size / 1.8,
                quantum: 4096.0,
                max_steps: 8,
                min: 0.0,
                max: size,
                p: 0.3,
            },
        );
        add("node_filesystem_files", &l, Model::Const(6_553_600.0));
        add(
            "node_filesystem_files_free",
            &l,
            Model::Walk {
                v: 6_000_000.0,
                quantum: 1.0,
                max_steps: 3,
                min: 0.0,
                max: 6_553_600.0,
                p: 0.2,
            },
        );
        add("node_filesystem_readonly", &l, Model::Const(0.0));
        add("node_filesystem_device_error", &l, Model::Const(0.0));
    }
    for (dev, busy) in [("eth0", 1.0), ("eth1", 0.7), ("lo", 0.5), ("docker0", 0.1)] {
        let l = [("device", dev.to_string())];
        for (name, lo, hi) in [
            ("node_network_receive_bytes_total", 1e3, 2e5),
            ("node_network_transmit_bytes_total", 1e3, 1e5),
            ("node_network_receive_packets_total", 10.0, 400.0),
            ("node_network_transmit_packets_total", 10.0, 300.0),
            ("node_network_receive_errs_total", 0.0, 0.0),
            ("node_network_transmit_errs_total", 0.0, 0.0),
            ("node_network_receive_drop_total", 0.0, 1.0),
            ("node_network_transmit_drop_total", 0.0, 0.0),
            ("node_network_receive_multicast_total", 1.0, 2.0),
            ("node_network_receive_compressed_total", 0.0, 0.0),
        ] {
            let p = if hi > 1.0 { busy } else { 0.05 };
            add(
                name,
                &l,
                Model::Counter {
                    v: (rng.below(1 << 36)) as f64,
                    lo,
                    hi,
                    dec: 0,
                    p,
                },
            );
        }
        add("node_network_mtu_bytes", &l, Model::Const(1500.0));
        add("node_network_up", &l, Model::Const(1.0));
        add("node_network_speed_bytes", &l, Model::Const(125_000_000.0));
        add("node_network_carrier", &l, Model::Const(1.0));
        add(
            "node_network_transmit_queue_length",
            &l,
            Model::Const(1000.0),
        );
    }
    for (dev, busy) in [("sda", 0.7), ("sdb", 0.1), ("nvme0n1", 0.7)] {
        let l = [("device", dev.to_string())];
        for (name, lo, hi, dec) in [
            ("node_disk_reads_completed_total", 1.0, 30.0, 0),
            ("node_disk_writes_completed_total", 10.0, 200.0, 0),
            ("node_disk_read_bytes_total", 4096.0, 2e5, 0),
            ("node_disk_written_bytes_total", 4e4, 2e6, 0),
            ("node_disk_io_time_seconds_total", 0.001, 0.5, 3),
            ("node_disk_read_time_seconds_total", 0.001, 0.1, 3),
            ("node_disk_write_time_seconds_total", 0.001, 0.5, 3),
            ("node_disk_io_time_weighted_seconds_total", 0.001, 0.8, 3),
            ("node_disk_reads_merged_total", 0.0, 5.0, 0),
            ("node_disk_writes_merged_total", 0.0, 50.0, 0),
            ("node_disk_discards_completed_total", 0.0, 0.0, 0),
        ] {
            let p = if hi > 0.0 { busy } else { 0.0 };
            let mut m = Model::Counter {
                v: rng.below(1 << 30) as f64,
                lo,
                hi,
                dec,
                p,
            };
            if name.contains("bytes")
                && let Model::Counter { v, .. } = &mut m
            {
                *v = (*v / 512.0).round() * 512.0;
            }
            add(name, &l, m);
        }
        add(
            "node_disk_io_now",
            &l,
            Model::Walk {
                v: 0.0,
                quantum: 1.0,
                max_steps: 1,
                min: 0.0,
                max: 64.0,
                p: 0.1,
            },
        );
    }
    for name in ["node_load1", "node_load5", "node_load15"] {
        add(
            name,
            &[],
            Model::Walk {
                v: 1.5,
                quantum: 0.01,
                max_steps: 10,
                min: 0.0,
                max: 64.0,
                p: 0.9,
            },
        );
    }
    for (name, lo, hi) in [
        ("node_context_switches_total", 1e4, 9e4),
        ("node_intr_total", 1e4, 5e4),
        ("node_forks_total", 5.0, 200.0),
    ] {
        add(
            name,
            &[],
            Model::Counter {
                v: rng.below(1 << 34) as f64,
                lo,
                hi,
                dec: 0,
                p: 1.0,
            },
        );
    }
    add(
        "node_boot_time_seconds",
        &[],
        Model::Const(1.7e9 + rng.below(1 << 20) as f64),
    );
    add("node_time_seconds", &[], Model::Clock);
    for c in 0..35 {
        let l = [("collector", format!("collector{c:02}"))];
        add(
            "node_scrape_collector_duration_seconds",
            &l,
            Model::Noise { lo: 1e-5, hi: 0.02 },
        );
        add("node_scrape_collector_success", &l, Model::Const(1.0));
    }
    for i in 0..30 {
        add(
            &format!("go_memstats_m{i:02}_bytes"),
            &[],
            Model::Walk {
                v: 1e7 + rng.below(1 << 24) as f64,
                quantum: 8.0,
                max_steps: 500,
                min: 0.0,
                max: 1e12,
                p: 0.5,
            },
        );
    }
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        add(
            "go_gc_duration_seconds",
            &[("quantile", q.into())],
            Model::Noise { lo: 1e-5, hi: 1e-3 },
        );
    }
    add(
        "go_goroutines",
        &[],
        Model::Walk {
            v: 8.0,
            quantum: 1.0,
            max_steps: 1,
            min: 6.0,
            max: 12.0,
            p: 0.2,
        },
    );
    add("go_threads", &[], Model::Const(9.0));
    add(
        "process_cpu_seconds_total",
        &[],
        Model::Counter {
            v: 1000.0,
            lo: 0.01,
            hi: 0.1,
            dec: 2,
            p: 0.8,
        },
    );
    add(
        "process_resident_memory_bytes",
        &[],
        Model::Walk {
            v: 2.1e7,
            quantum: 4096.0,
            max_steps: 16,
            min: 0.0,
            max: 1e10,
            p: 0.5,
        },
    );
    add(
        "process_open_fds",
        &[],
        Model::Walk {
            v: 10.0,
            quantum: 1.0,
            max_steps: 1,
            min: 8.0,
            max: 14.0,
            p: 0.1,
        },
    );
    add(
        "process_start_time_seconds",
        &[],
        Model::Const(1.7e9 + 0.37),
    );
    add("process_max_fds", &[], Model::Const(1_048_576.0));
    for i in 0..40 {
        add(
            &format!("node_netstat_s{i:02}"),
            &[],
            Model::Counter {
                v: rng.below(1 << 30) as f64,
                lo: 1.0,
                hi: 100.0,
                dec: 0,
                p: if i % 3 == 0 { 0.0 } else { 0.4 },
            },
        );
    }
    for i in 0..10 {
        add(
            &format!("node_vmstat_v{i}"),
            &[],
            Model::Counter {
                v: rng.below(1 << 32) as f64,
                lo: 1.0,
                hi: 3e3,
                dec: 0,
                p: 0.8,
            },
        );
    }
    for i in 0..15 {
        add(
            &format!("node_sockstat_k{i:02}"),
            &[],
            Model::Walk {
                v: 100.0,
                quantum: 1.0,
                max_steps: 3,
                min: 0.0,
                max: 1e6,
                p: 0.3,
            },
        );
    }
    for s in 0..4 {
        add(
            "node_hwmon_temp_celsius",
            &[("chip", "coretemp".into()), ("sensor", format!("temp{s}"))],
            Model::Walk {
                v: 45.0,
                quantum: 1.0,
                max_steps: 1,
                min: 30.0,
                max: 90.0,
                p: 0.2,
            },
        );
    }
    out
}

fn fleet(hosts: usize, seed: u64) -> (Vec<SeriesGen>, Rng) {
    let mut rng = Rng(seed);
    let mut all = Vec::new();
    for h in 0..hosts {
        all.extend(host_series(h, &mut rng));
    }
    (all, rng)
}

/// Scrape timestamps: 15 s apart with a few milliseconds of jitter, as real scrapes have.
fn scrape_t(rng: &mut Rng, t0: i64, round: i64) -> i64 {
    t0 + round * 15_000 + rng.below(5) as i64
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers.

fn clk_tck() -> f64 {
    100.0
}

/// utime + stime of a /proc stat file, in seconds.
fn cpu_seconds(stat_path: &str) -> f64 {
    let s = std::fs::read_to_string(stat_path).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (ut + st) / clk_tck()
}

fn thread_stat(name: &str) -> Option<String> {
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return Some(e.path().join("stat").display().to_string());
        }
    }
    None
}

fn rss_kb(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn open_db(dir: &std::path::Path) -> (Tsdb, sightline::tsdb::TsdbThreads) {
    let cfg = TsdbConfig {
        // No cut during the run: the benchmark measures appends and the head.
        block_duration: Duration::from_secs(30 * 86400),
        retention: Duration::from_secs(365 * 86400),
        ..TsdbConfig::default()
    };
    Tsdb::open(dir, cfg, Arc::new(TsdbCounters::default())).unwrap()
}

// ---------------------------------------------------------------------------------------------

fn append_mode() {
    let hosts = arg("--hosts", 40) as usize;
    let rounds = arg("--rounds", 500) as i64;
    let writers = arg("--writers", 2) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (db, threads) = open_db(dir.path());
    let (gens, _) = fleet(hosts, 7);
    let per_host = gens.len() / hosts;
    println!(
        "append: {hosts} hosts x {per_host} series = {} series, {rounds} rounds, {writers} writers",
        gens.len()
    );
    // Values are generated before the clock starts: the benchmark measures the store.
    let gens = Arc::new(std::sync::Mutex::new(gens));
    let writer_stat = thread_stat("tsdb-writer").expect("writer thread");
    let maint_stat = thread_stat("tsdb-maintain").expect("maintenance thread");
    let engine_cpu = || cpu_seconds(&writer_stat) + cpu_seconds(&maint_stat);
    let (p0, w0, t0) = (cpu_seconds("/proc/self/stat"), engine_cpu(), Instant::now());
    let mut total = 0u64;
    let mut gen_cpu = 0.0;
    for chunk_start in (0..rounds).step_by(20) {
        let chunk_end = (chunk_start + 20).min(rounds);
        // Build this chunk's batches (not timed as store CPU: subtracted below).
        let g0 = cpu_seconds("/proc/self/stat");
        let mut batches: Vec<Batch> = Vec::new();
        {
            let mut gens = gens.lock().unwrap();
            let mut rng = Rng(99 + chunk_start as u64);
            for r in chunk_start..chunk_end {
                for h in 0..hosts {
                    let t = scrape_t(&mut rng, 1_790_000_000_000, r);
                    let mut b = Batch::default();
                    for g in &mut gens[h * per_host..(h + 1) * per_host] {
                        let v = g.model.step(&mut rng, t);
                        b.push(g.labels.clone(), t, v);
                    }
                    batches.push(b);
                }
            }
        }
        gen_cpu += cpu_seconds("/proc/self/stat") - g0;
        let n: u64 = batches.iter().map(|b| b.samples.len() as u64).sum();
        // Writers pop from the end: oldest last would make every sample out of order.
        batches.reverse();
        let queue = Arc::new(std::sync::Mutex::new(batches));
        std::thread::scope(|s| {
            for _ in 0..writers {
                let q = queue.clone();
                let db = db.clone();
                s.spawn(move || {
                    loop {
                        let Some(b) = q.lock().unwrap().pop() else {
                            break;
                        };
                        let r = db.append_blocking(b).unwrap();
                        assert_eq!(r.rejected(), 0);
                    }
                });
            }
        });
        total += n;
    }
    let wall = t0.elapsed().as_secs_f64();
    let proc_cpu = cpu_seconds("/proc/self/stat") - p0;
    let eng_cpu = engine_cpu() - w0;
    println!("samples {total}");
    println!("wall_seconds {wall:.2} (of which building batches: {gen_cpu:.2} CPU-s)");
    println!(
        "samples_per_second {:.0} (wall time without batch building)",
        total as f64 / (wall - gen_cpu).max(1e-9)
    );
    println!(
        "samples_per_cpu_second_engine {:.0} (store threads: writer + maintenance, cpu {eng_cpu:.2} s)",
        total as f64 / eng_cpu
    );
    println!(
        "samples_per_cpu_second_process_all_in {:.0} (everything: building the batches' label sets, freeing them, the store; cpu {proc_cpu:.2} s)",
        total as f64 / proc_cpu
    );
    db.close();
    threads.join();
    println!(
        "wal_bytes_per_sample {:.2}",
        dir_size(&dir.path().join("wal")) as f64 / total as f64
    );
}

fn memory_mode() {
    let series = arg("--series", 200_000) as usize;
    let samples = arg("--samples", 480) as i64;
    let per_host = host_series(0, &mut Rng(1)).len();
    let hosts = series.div_ceil(per_host);
    let (mut gens, mut rng) = fleet(hosts, 11);
    gens.truncate(series);
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id().to_string();
    let (db, threads) = open_db(dir.path());
    let rss0 = rss_kb(&pid);
    println!(
        "memory: {} series x {samples} samples (15 s apart); rss before {} MB",
        gens.len(),
        rss0 / 1024
    );
    let t0 = Instant::now();
    for r in 0..samples {
        let t = scrape_t(&mut rng, 1_790_000_000_000, r);
        for part in gens.chunks_mut(10_000) {
            let mut b = Batch::default();
            for g in part.iter_mut() {
                let v = g.model.step(&mut rng, t);
                b.push(g.labels.clone(), t, v);
            }
            db.append_blocking(b).unwrap();
        }
    }
    let head = db.head_bytes();
    let rss1 = rss_kb(&pid);
    println!("ingest_seconds {:.1}", t0.elapsed().as_secs_f64());
    println!("head_series {}", db.num_series());
    println!(
        "rss_growth_bytes_per_series {:.0} (rss after {} MB; includes allocator slack and this process's own buffers)",
        (rss1.saturating_sub(rss0) * 1024) as f64 / gens.len() as f64,
        rss1 / 1024
    );
    println!(
        "head_accounted_bytes_per_series {:.0}",
        head as f64 / gens.len() as f64
    );
    // glibc's view: bytes in use (headers included) and free bytes kept in the heap.
    let mi = unsafe { libc::mallinfo2() };
    println!(
        "malloc_in_use_bytes_per_series {:.0} malloc_free_bytes_per_series {:.0} mmapped_mb {}",
        mi.uordblks as f64 / gens.len() as f64,
        mi.fordblks as f64 / gens.len() as f64,
        mi.hblkhd >> 20
    );
    db.close();
    threads.join();
}

fn disk_mode() {
    let hosts = arg("--hosts", 8) as usize;
    let hours = arg("--hours", 12) as i64;
    let rounds = hours * 3600 / 15;
    let tmp = tempfile::tempdir().unwrap();
    let (mut gens, mut rng) = fleet(hosts, 23);
    let t_start = 1_790_000_000_000i64 - 1_790_000_000_000i64 % 7_200_000;
    // One timestamp vector for all series (as one scrape loop per host would give).
    let times: Vec<i64> = (0..rounds)
        .map(|r| scrape_t(&mut rng, t_start, r))
        .collect();
    let mut data: Vec<Vec<(i64, f64)>> = Vec::with_capacity(gens.len());
    for g in &mut gens {
        data.push(
            times
                .iter()
                .map(|&t| (t, g.model.step(&mut rng, t)))
                .collect(),
        );
    }
    let n_samples: u64 = data.iter().map(|d| d.len() as u64).sum();
    if std::env::args().any(|a| a == "--by-family") {
        let mut fam: HashMap<String, (u64, u64)> = HashMap::new();
        for (g, d) in gens.iter().zip(&data) {
            let e = fam
                .entry(g.labels.metric_name().unwrap().to_string())
                .or_default();
            for part in d.chunks(480) {
                e.0 += sightline::tsdb::codec::encode(part).len() as u64;
                e.1 += part.len() as u64;
            }
        }
        let mut v: Vec<_> = fam.into_iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1.0));
        for (name, (bytes, n)) in v.iter().take(25) {
            println!(
                "  {name:50} {:6.2} B/sample  {:5.1}% of bytes",
                *bytes as f64 / *n as f64,
                100.0 * *bytes as f64 / v.iter().map(|x| x.1.0).sum::<u64>() as f64
            );
        }
    }
    println!(
        "disk: {} series x {rounds} samples = {n_samples} samples ({hours} h at 15 s)",
        gens.len()
    );

    // The OpenMetrics file: families contiguous, each series' samples in time order.
    let om = tmp.path().join("data.om");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&om).unwrap());
        let mut by_family: Vec<usize> = (0..gens.len()).collect();
        by_family.sort_by(|a, b| {
            gens[*a]
                .labels
                .metric_name()
                .cmp(&gens[*b].labels.metric_name())
        });
        let mut last_family = String::new();
        for i in by_family {
            let l = &gens[i].labels;
            let name = l.metric_name().unwrap().to_string();
            if name != last_family {
                writeln!(
                    f,
                    "# TYPE {name} {}",
                    if name.ends_with("_total") {
                        "unknown"
                    } else {
                        "gauge"
                    }
                )
                .unwrap();
                last_family = name.clone();
            }
            let lab: Vec<String> = l
                .iter()
                .filter(|x| x.name != "__name__")
                .map(|x| format!("{}=\"{}\"", x.name, x.value))
                .collect();
            for (t, v) in &data[i] {
                writeln!(
                    f,
                    "{name}{{{}}} {} {}.{:03}",
                    lab.join(","),
                    fmt_om(*v),
                    t / 1000,
                    t % 1000
                )
                .unwrap();
            }
        }
        writeln!(f, "# EOF").unwrap();
    }
    println!(
        "openmetrics_file_bytes {}",
        std::fs::metadata(&om).unwrap().len()
    );

    let prom_out = tmp.path().join("prom");
    let t0 = Instant::now();
    let st = std::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&prom_out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("promtool (apt-get install prometheus)");
    assert!(st.success());
    let prom_bytes = dir_size(&prom_out);
    let prom_blocks = std::fs::read_dir(&prom_out).unwrap().count();
    println!("promtool_seconds {:.1}", t0.elapsed().as_secs_f64());

    // Sightline: parse the same file with its exposition parser, then 2 h blocks as promtool.
    let t0 = Instant::now();
    let text = std::fs::read_to_string(&om).unwrap();
    let parsed = sightline::scrape::exposition::parse(
        &text,
        sightline::scrape::exposition::Format::OpenMetrics,
    )
    .unwrap();
    drop(text);
    let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
    for s in parsed.samples {
        series
            .entry(Labels::from_pairs(s.labels))
            .or_default()
            .push((s.timestamp.unwrap(), s.value));
    }
    let mut sorted: Vec<(Labels, Vec<(i64, f64)>)> = series.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let ours = tmp.path().join("sightline");
    let blocks_dir = ours.join("blocks");
    std::fs::create_dir_all(&blocks_dir).unwrap();
    let labels: Vec<Labels> = sorted.iter().map(|s| s.0.clone()).collect();
    let block_ms = 7_200_000i64;
    let (tmin, tmax) = (times[0], *times.last().unwrap());
    let mut seq = 1;
    let mut w = tmin - tmin.rem_euclid(block_ms);
    while w <= tmax {
        sightline::tsdb::block::write_block(&blocks_dir, seq, 1, vec![seq], &labels, |i| {
            sorted[i]
                .1
                .iter()
                .copied()
                .filter(|s| s.0 >= w && s.0 < w + block_ms)
                .collect()
        })
        .unwrap();
        seq += 1;
        w += block_ms;
    }
    let our_bytes = dir_size(&blocks_dir);
    let our_blocks = std::fs::read_dir(&blocks_dir).unwrap().count();
    println!("sightline_seconds {:.1}", t0.elapsed().as_secs_f64());
    let p = prom_bytes as f64 / n_samples as f64;
    let o = our_bytes as f64 / n_samples as f64;
    println!("prometheus_blocks {prom_blocks} bytes {prom_bytes} bytes_per_sample {p:.3}");
    println!("sightline_blocks {our_blocks} bytes {our_bytes} bytes_per_sample {o:.3}");
    println!("ratio_sightline_to_prometheus {:.3}", o / p);
    // Then let the store compact them (2 h -> 6 h -> ...).
    let cfg = TsdbConfig {
        retention: Duration::from_secs(365 * 86400),
        ..TsdbConfig::default()
    };
    let (db, threads) = Tsdb::open(&ours, cfg, Arc::new(TsdbCounters::default())).unwrap();
    // The head fence (from the blocks' end) lets every complete window compact.
    db.maintain_blocking();
    let compacted = dir_size(&blocks_dir);
    println!(
        "sightline_after_compaction blocks {} bytes_per_sample {:.3} ratio {:.3}",
        db.blocks().len(),
        compacted as f64 / n_samples as f64,
        (compacted as f64 / n_samples as f64) / p
    );
    // Spot check: what went in comes out.
    let want = &sorted[sorted.len() / 2];
    let ms: Vec<sightline::tsdb::Matcher> = want
        .0
        .iter()
        .map(|l| sightline::tsdb::Matcher::eq(l.name.clone(), l.value.clone()))
        .collect();
    let got: Vec<_> = sightline::tsdb::Queryable::select(&db, i64::MIN, i64::MAX, &ms)
        .unwrap()
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.len(), want.1.len());
    assert!(
        got[0]
            .samples
            .iter()
            .zip(&want.1)
            .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
    );
    db.close();
    threads.join();
}

fn fmt_om(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Shortest round-trip form.
        format!("{v:?}")
    }
}

fn otlp_mode() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let seconds = arg("--seconds", 20);
    let conc = arg("--concurrency", 2) as usize;
    let points = arg("--points", 10_000) as usize;
    let kv = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    // Pre-encoded exports: host h sends its ~480 series; `points` per export over several hosts.
    let hosts_per = points.div_ceil(480);
    let expected = (400_000 * seconds as usize * 2) / points + 8;
    println!("otlp: encoding {expected} exports of about {points} points");
    let mut rng = Rng(5);
    let (mut gens, _) = fleet(hosts_per * 4, 3);
    let per_host = gens.len() / (hosts_per * 4);
    let mut bodies: Vec<(Vec<u8>, usize)> = Vec::with_capacity(expected);
    for e in 0..expected {
        let group = e % 4;
        let round = (e / 4) as i64;
        let t = scrape_t(&mut rng, 1_790_000_000_000, round);
        let mut rms = Vec::new();
        let mut n = 0;
        for h in 0..hosts_per {
            let host = group * hosts_per + h;
            let mut metrics = Vec::new();
            for g in &mut gens[host * per_host..(host + 1) * per_host] {
                let v = g.model.step(&mut rng, t);
                let attrs = g
                    .labels
                    .iter()
                    .filter(|l| !matches!(l.name.as_str(), "__name__" | "job" | "instance"))
                    .map(|l| kv(&l.name, l.value.clone()))
                    .collect();
                metrics.push(Metric {
                    name: g.labels.metric_name().unwrap().to_string(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            attributes: attrs,
                            time_unix_nano: t as u64 * 1_000_000,
                            value: Some(number_data_point::Value::AsDouble(v)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                });
                n += 1;
            }
            rms.push(ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "node".into()),
                        kv("service.instance.id", format!("host-{host}")),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        bodies.push((
            ExportMetricsServiceRequest {
                resource_metrics: rms,
            }
            .encode_to_vec(),
            n,
        ));
    }
    // Clients pop from the end: oldest at the end, so data arrives in time order.
    bodies.reverse();
    let dir = tempfile::tempdir().unwrap();
    let server = Sightline::spawn(dir.path(), &[]);
    let o = server.otlp_http;
    let url = format!("http://127.0.0.1:{o}/v1/metrics");
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let t0 = Instant::now();
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut lat: Vec<f64> = Vec::new();
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for _ in 0..conc {
            let q = queue.clone();
            let url = url.clone();
            let acked = acked.clone();
            hs.push(s.spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let Some((body, n)) = q.lock().unwrap().pop() else { break };
                    let t = Instant::now();
                    let r = client.post(&url).header("content-type", "application/x-protobuf").body(body).send().unwrap();
                    assert_eq!(r.status(), 200);
                    let resp = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::decode(r.bytes().unwrap()).unwrap();
                    assert!(resp.partial_success.is_none(), "{:?}", resp.partial_success);
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    acked.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
                lat
            }));
        }
        for h in hs {
            lat.extend(h.join().unwrap());
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let n = acked.load(std::sync::atomic::Ordering::Relaxed);
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rss = rss_kb(&server.child.id().to_string()) / 1024;
    println!("samples_acknowledged {n} in {wall:.1} s");
    println!("samples_per_second {:.0}", n as f64 / wall);
    println!(
        "ack_latency_ms p50 {:.1} p99 {:.1} (exports of {points} points)",
        lat[lat.len() / 2],
        lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
    );
    println!("server_rss_mb {rss}");
    drop(server);
}

fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--") && !a.chars().all(|c| c.is_ascii_digit()));
    match mode.as_deref() {
        Some("append") => append_mode(),
        Some("memory") => memory_mode(),
        Some("disk") => disk_mode(),
        Some("otlp") => otlp_mode(),
        _ => {
            eprintln!("usage: cargo bench --bench tsdb -- append|memory|disk|otlp [options]");
            std::process::exit(2);
        }
    }
}
