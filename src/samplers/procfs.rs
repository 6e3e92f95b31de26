//! Parsers for the `/proc` text files the host sampler reads (`stat`, `loadavg`, `meminfo`,
//! `diskstats`, `net/dev`, `vmstat`, `sys/fs/file-nr`, `net/sockstat`, `net/netstat`), each
//! turning one file's text into node-exporter's series. Pure functions of the text: unit tests
//! feed them captured files.

use super::emit::Samples;

pub fn parse_stat(text: &str, hz: f64, s: &mut Samples) {
    const MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let nums: Vec<f64> = f.filter_map(|x| x.parse().ok()).collect();
        if let Some(cpu) = key.strip_prefix("cpu")
            && !cpu.is_empty()
        {
            for (mode, v) in MODES.iter().zip(&nums) {
                s.counter(
                    "node_cpu_seconds_total",
                    "Seconds the CPUs spent in each mode.",
                    &[("cpu", cpu), ("mode", mode)],
                    v / hz,
                );
            }
            for (i, mode) in [(8, "user"), (9, "nice")] {
                if let Some(v) = nums.get(i) {
                    s.counter(
                        "node_cpu_guest_seconds_total",
                        "Seconds the CPUs spent in guests (VMs) for each mode.",
                        &[("cpu", cpu), ("mode", mode)],
                        v / hz,
                    );
                }
            }
            continue;
        }
        let first = nums.first().copied();
        match (key, first) {
            ("intr", Some(v)) => s.counter(
                "node_intr_total",
                "Total number of interrupts serviced.",
                &[],
                v,
            ),
            ("ctxt", Some(v)) => s.counter(
                "node_context_switches_total",
                "Total number of context switches.",
                &[],
                v,
            ),
            ("btime", Some(v)) => s.gauge(
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                &[],
                v,
            ),
            ("processes", Some(v)) => {
                s.counter("node_forks_total", "Total number of forks.", &[], v)
            }
            ("procs_running", Some(v)) => s.gauge(
                "node_procs_running",
                "Number of processes in runnable state.",
                &[],
                v,
            ),
            ("procs_blocked", Some(v)) => s.gauge(
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                &[],
                v,
            ),
            _ => {}
        }
    }
}

pub fn parse_loadavg(text: &str, s: &mut Samples) {
    let f: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    for (i, name) in ["node_load1", "node_load5", "node_load15"]
        .iter()
        .enumerate()
    {
        if let Some(v) = f.get(i) {
            s.gauge(name, &format!("{}m load average.", [1, 5, 15][i]), &[], *v);
        }
    }
}

pub fn parse_meminfo(text: &str, s: &mut Samples) {
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let Some(v) = f.next().and_then(|x| x.parse::<f64>().ok()) else {
            continue;
        };
        // "Active(anon)" -> "Active_anon", as node-exporter names it.
        let key = key.replace('(', "_").replace(')', "");
        let (name, v) = if f.next() == Some("kB") {
            (format!("node_memory_{key}_bytes"), v * 1024.0)
        } else {
            (format!("node_memory_{key}"), v)
        };
        s.gauge(
            &name,
            &format!(
                "Memory information field {}.",
                name.trim_start_matches("node_memory_")
            ),
            &[],
            v,
        );
    }
}

/// node-exporter's default: whole disks only, no RAM disks, loops or floppies.
pub(super) fn ignored_disk(dev: &str) -> bool {
    let b = dev.as_bytes();
    if ["ram", "loop", "fd"].iter().any(|p| {
        dev.strip_prefix(p)
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit()))
    }) {
        return true;
    }
    // (h|s|v|xv)d[a-z]<digits>: partitions of classic disks.
    for p in ["hd", "sd", "vd", "xvd"] {
        if let Some(r) = dev.strip_prefix(p) {
            let r = r.as_bytes();
            if r.len() >= 2
                && r[0].is_ascii_lowercase()
                && r[1..].iter().all(|c| c.is_ascii_digit())
            {
                return true;
            }
        }
    }
    // nvme<d>n<d>p<d>: NVMe partitions.
    if let Some(r) = dev.strip_prefix("nvme") {
        let parts: Vec<&str> = r.split(['n', 'p']).collect();
        if parts.len() == 3
            && r.contains('p')
            && parts
                .iter()
                .all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
        {
            return true;
        }
    }
    let _ = b;
    false
}

/// How a `/proc/diskstats` field becomes node-exporter's unit.
#[derive(Clone, Copy)]
enum DiskUnit {
    Count,
    /// 512-byte sectors -> bytes.
    Sectors,
    /// Milliseconds -> seconds.
    Millis,
}

/// The counters of `/proc/diskstats`, as data: (field index, name, help, unit). Fields 14-17
/// (discards) exist from Linux 4.18, 18-19 (flushes) from 5.5; a line shorter than a field's
/// index + 1 does not have it.
const DISK_COUNTERS: [(usize, &str, &str, DiskUnit); 16] = [
    (
        3,
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        DiskUnit::Count,
    ),
    (
        4,
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        DiskUnit::Count,
    ),
    (
        5,
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        DiskUnit::Sectors,
    ),
    (
        6,
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        DiskUnit::Millis,
    ),
    (
        7,
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        DiskUnit::Count,
    ),
    (
        8,
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        DiskUnit::Count,
    ),
    (
        9,
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        DiskUnit::Sectors,
    ),
    (
        10,
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        DiskUnit::Millis,
    ),
    (
        12,
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        DiskUnit::Millis,
    ),
    (
        13,
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        DiskUnit::Millis,
    ),
    (
        14,
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        DiskUnit::Count,
    ),
    (
        15,
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        DiskUnit::Count,
    ),
    (
        16,
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        DiskUnit::Count,
    ),
    (
        17,
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        DiskUnit::Millis,
    ),
    (
        18,
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        DiskUnit::Count,
    ),
    (
        19,
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        DiskUnit::Millis,
    ),
];

pub fn parse_diskstats(text: &str, s: &mut Samples) {
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let dev = f[2];
        if ignored_disk(dev) {
            continue;
        }
        let n = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
        let l = [("device", dev)];
        for (i, name, help, unit) in DISK_COUNTERS {
            // Discards come as a group of four and flushes as a group of two.
            let present = match i {
                14..=17 => f.len() >= 18,
                18..=19 => f.len() >= 20,
                _ => true,
            };
            if i == 12
                && let Some(v) = n(11)
            {
                s.gauge(
                    "node_disk_io_now",
                    "The number of I/Os currently in progress.",
                    &l,
                    v,
                );
            }
            let Some(v) = n(i).filter(|_| present) else {
                continue;
            };
            let v = match unit {
                DiskUnit::Count => v,
                DiskUnit::Sectors => v * 512.0,
                DiskUnit::Millis => v / 1000.0,
            };
            s.counter(name, help, &l, v);
        }
    }
}

pub fn parse_netdev(text: &str, s: &mut Samples) {
    const RX: [&str; 8] = [
        "bytes",
        "packets",
        "errs",
        "drop",
        "fifo",
        "frame",
        "compressed",
        "multicast",
    ];
    const TX: [&str; 8] = [
        "bytes",
        "packets",
        "errs",
        "drop",
        "fifo",
        "colls",
        "carrier",
        "compressed",
    ];
    for line in text.lines().skip(2) {
        let Some((dev, rest)) = line.split_once(':') else {
            continue;
        };
        let dev = dev.trim();
        let v: Vec<f64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 16 {
            continue;
        }
        for (i, f) in RX.iter().enumerate() {
            s.counter(
                &format!("node_network_receive_{f}_total"),
                &format!("Network device statistic receive_{f}."),
                &[("device", dev)],
                v[i],
            );
        }
        for (i, f) in TX.iter().enumerate() {
            s.counter(
                &format!("node_network_transmit_{f}_total"),
                &format!("Network device statistic transmit_{f}."),
                &[("device", dev)],
                v[8 + i],
            );
        }
    }
}

pub fn parse_vmstat(text: &str, s: &mut Samples) {
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        // node-exporter's default field set.
        let wanted = k == "oom_kill"
            || k.starts_with("pgpg")
            || k.starts_with("pswp")
            || (k.starts_with("pg") && k.contains("fault"));
        if wanted && let Ok(v) = v.trim().parse::<f64>() {
            s.gauge(
                &format!("node_vmstat_{k}"),
                &format!("/proc/vmstat information field {k}."),
                &[],
                v,
            );
        }
    }
}

pub fn parse_filefd(text: &str, s: &mut Samples) {
    let f: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() >= 3 {
        s.gauge(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            &[],
            f[0],
        );
        s.gauge(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            &[],
            f[2],
        );
    }
}

pub fn parse_sockstat(text: &str, s: &mut Samples) {
    // Memory is in pages; node-exporter adds `_mem_bytes` beside `_mem`.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        for kv in f.chunks(2) {
            let [k, v] = kv else { continue };
            let Ok(v) = v.parse::<f64>() else { continue };
            if proto == "sockets" {
                s.gauge(
                    &format!("node_sockstat_sockets_{k}"),
                    &format!("Number of IPv4 sockets in state {k}."),
                    &[],
                    v,
                );
                continue;
            }
            let name = format!("node_sockstat_{proto}_{k}");
            s.gauge(
                &name,
                &format!("Number of {proto} sockets in state {k}."),
                &[],
                v,
            );
            if *k == "mem" {
                s.gauge(
                    &format!("{name}_bytes"),
                    &format!("Number of {proto} sockets in state mem_bytes."),
                    &[],
                    v * page,
                );
            }
        }
    }
}

/// `/proc/net/snmp` and `/proc/net/netstat`: header and value lines in pairs.
pub fn parse_netstat(text: &str, s: &mut Samples) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((proto, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (k, v) in names.split_whitespace().zip(values.split_whitespace()) {
            let key = format!("{proto}_{k}");
            if !netstat_wanted(&key) {
                continue;
            }
            if let Ok(v) = v.parse::<f64>() {
                s.gauge(
                    &format!("node_netstat_{key}"),
                    &format!("Statistic {proto}{k}."),
                    &[],
                    v,
                );
            }
        }
    }
}

/// node-exporter 1.5's default netstat fields.
pub(super) fn netstat_wanted(k: &str) -> bool {
    k.ends_with("_InErrors")
        || k.ends_with("_InErrs")
        || k == "Ip_Forwarding"
        || matches!(k, "IpExt_InOctets" | "IpExt_OutOctets")
        || matches!(k, "Icmp_InMsgs" | "Icmp_OutMsgs")
        || (k.starts_with("TcpExt_Listen") || k.starts_with("TcpExt_Syncookies"))
        || matches!(k, "TcpExt_TCPSynRetrans" | "TcpExt_TCPTimeouts")
        || matches!(
            k,
            "Tcp_ActiveOpens"
                | "Tcp_InSegs"
                | "Tcp_OutSegs"
                | "Tcp_OutRsts"
                | "Tcp_PassiveOpens"
                | "Tcp_RetransSegs"
                | "Tcp_CurrEstab"
        )
        || matches!(
            k,
            "Udp_InDatagrams"
                | "Udp_OutDatagrams"
                | "Udp_NoPorts"
                | "Udp_RcvbufErrors"
                | "Udp_SndbufErrors"
        )
}
