//! The host sampler: node-exporter's metrics, names and labels, read from `/proc` and `/sys`
//! (and `statvfs` and `uname`) the way node-exporter 1.5 reads them, so dashboards built for
//! node-exporter (Node Exporter Full) keep working. `sysinfo` gives the host name; it has no
//! per-mode CPU seconds, meminfo fields, disk or interface counters in node-exporter's units, so
//! those come from the kernel's files directly.
//!
//! In a container, mount the host's `/proc`, `/sys` and `/` read-only and point `[host]`
//! `proc_path`, `sys_path` and `rootfs_path` at them; without that, CPU, memory and load are the
//! host's anyway (they are not namespaced), while network interfaces, mounts and processes are
//! the container's own.

use std::path::{Path, PathBuf};

use super::emit::Samples;
pub use super::procfs::{
    parse_diskstats, parse_filefd, parse_loadavg, parse_meminfo, parse_netdev, parse_netstat,
    parse_sockstat, parse_stat, parse_vmstat,
};

/// Where the host's kernel files are.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            proc: "/proc".into(),
            sys: "/sys".into(),
            rootfs: "/".into(),
        }
    }
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// Clock ticks per second for `/proc/stat` (USER_HZ).
fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// Collects one round of host metrics.
pub fn collect(p: &HostPaths, st: &mut HostState) -> Samples {
    let mut s = Samples::default();
    if let Some(t) = read(&p.proc.join("stat")) {
        parse_stat(&t, user_hz(), &mut s);
    }
    if let Some(t) = read(&p.proc.join("loadavg")) {
        parse_loadavg(&t, &mut s);
    }
    if let Some(t) = read(&p.proc.join("meminfo")) {
        parse_meminfo(&t, &mut s);
    }
    if let Some(t) = read(&p.proc.join("diskstats")) {
        parse_diskstats(&t, &mut s);
    }
    if let Some(t) = read(&p.proc.join("net/dev")) {
        parse_netdev(&t, &mut s);
    }
    if let Some(t) = read(&p.proc.join("vmstat")) {
        parse_vmstat(&t, &mut s);
    }
    if let Some(t) = read(&p.proc.join("sys/fs/file-nr")) {
        parse_filefd(&t, &mut s);
    }
    if let Some(t) = read(&p.proc.join("net/sockstat")) {
        parse_sockstat(&t, &mut s);
    }
    for f in ["net/snmp", "net/netstat"] {
        if let Some(t) = read(&p.proc.join(f)) {
            parse_netstat(&t, &mut s);
        }
    }
    if let Some(t) = read(&p.proc.join("sys/kernel/random/entropy_avail"))
        && let Ok(v) = t.trim().parse::<f64>()
    {
        s.gauge(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            &[],
            v,
        );
    }
    if let Some(v) =
        read(&p.proc.join("sys/kernel/random/poolsize")).and_then(|t| t.trim().parse::<f64>().ok())
    {
        s.gauge(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            &[],
            v,
        );
    }
    pressure(&p.proc, &mut s);
    net_class(&p.sys, st, &mut s);
    st.round += 1;
    if let Some(t) = read(&p.proc.join("mounts")) {
        filesystems(&t, &p.rootfs, &mut s);
    }
    uname(&mut s);
    if let Some(t) = read(&p.rootfs.join("etc/os-release"))
        .or_else(|| read(&p.rootfs.join("usr/lib/os-release")))
    {
        parse_os_release(&t, &mut s);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    s.gauge(
        "node_time_seconds",
        "System time in seconds since epoch (1970).",
        &[],
        now,
    );
    s
}

/// The host name as node-exporter's `nodename` gives it.
pub fn host_name() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "localhost".into())
}

/// Pressure stall information (`/proc/pressure`), as node-exporter's `pressure` collector.
fn pressure(proc_path: &Path, s: &mut Samples) {
    for (res, lines) in [
        ("cpu", &[("some", "waiting")][..]),
        ("io", &[("some", "waiting"), ("full", "stalled")][..]),
        ("memory", &[("some", "waiting"), ("full", "stalled")][..]),
    ] {
        let Some(t) = read(&proc_path.join("pressure").join(res)) else {
            continue;
        };
        for (kind, what) in lines {
            let total = t
                .lines()
                .find(|l| l.starts_with(kind))
                .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")))
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(us) = total {
                s.counter(
                    &format!("node_pressure_{res}_{what}_seconds_total"),
                    &format!("Total time in seconds that processes have {what} for {res}"),
                    &[],
                    us / 1e6,
                );
            }
        }
    }
}

/// What changes rarely about an interface, re-read every [`STATIC_REFRESH_ROUNDS`] rounds:
/// opening some twenty sysfs files per interface each round was most of the sampler's cost.
#[derive(Clone, Default)]
struct IfaceStatic {
    address: String,
    broadcast: String,
    duplex: String,
    ifalias: String,
    props: Vec<(&'static str, &'static str, f64)>,
}

/// Rounds between re-reads of interface attributes that rarely change (mtu, addresses, ...);
/// state, carrier and counters are read every round.
const STATIC_REFRESH_ROUNDS: u64 = 12;

/// What the host sampler keeps between rounds.
#[derive(Default)]
pub struct HostState {
    round: u64,
    ifaces: std::collections::BTreeMap<String, IfaceStatic>,
}

fn iface_static(base: &Path) -> IfaceStatic {
    let attr = |name: &str| read(&base.join(name)).map(|v| v.trim().to_string());
    let num = |name: &str| attr(name).and_then(|v| v.parse::<f64>().ok());
    let mut props = Vec::new();
    for (file, name, help) in [
        (
            "mtu",
            "node_network_mtu_bytes",
            "Network device property: mtu_bytes",
        ),
        (
            "tx_queue_len",
            "node_network_transmit_queue_length",
            "Network device property: transmit_queue_length",
        ),
        (
            "ifindex",
            "node_network_iface_id",
            "Network device property: iface_id",
        ),
        (
            "iflink",
            "node_network_iface_link",
            "Network device property: iface_link",
        ),
        (
            "type",
            "node_network_protocol_type",
            "Network device property: protocol_type",
        ),
        (
            "flags",
            "node_network_flags",
            "Network device property: flags",
        ),
        (
            "addr_assign_type",
            "node_network_address_assign_type",
            "Network device property: address_assign_type",
        ),
        (
            "name_assign_type",
            "node_network_name_assign_type",
            "Network device property: name_assign_type",
        ),
        (
            "netdev_group",
            "node_network_net_dev_group",
            "Network device property: net_dev_group",
        ),
        (
            "dev_id",
            "node_network_device_id",
            "Network device property: device_id",
        ),
        (
            "link_mode",
            "node_network_iface_link_mode",
            "Network device property: iface_link_mode",
        ),
        // Speed is in Mbit/s; like node-exporter (without --collector.netclass.ignore-invalid-speed)
        // an unknown speed (-1) is reported as is, scaled.
        (
            "speed",
            "node_network_speed_bytes",
            "Network device property: speed_bytes",
        ),
    ] {
        let v = if file == "flags" || file == "dev_id" {
            attr(file)
                .and_then(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok())
                .map(|x| x as f64)
        } else if file == "speed" {
            num(file).map(|mbps| mbps * 125_000.0)
        } else {
            num(file)
        };
        if let Some(v) = v {
            props.push((name, help, v));
        }
    }
    IfaceStatic {
        address: attr("address").unwrap_or_default(),
        broadcast: attr("broadcast").unwrap_or_default(),
        duplex: attr("duplex").unwrap_or_default(),
        ifalias: attr("ifalias").unwrap_or_default(),
        props,
    }
}

/// Network interface attributes from `/sys/class/net`, as node-exporter's `netclass`.
fn net_class(sys_path: &Path, st: &mut HostState, s: &mut Samples) {
    let Ok(dir) = std::fs::read_dir(sys_path.join("class/net")) else {
        return;
    };
    let mut devs: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    devs.sort();
    let refresh = st.round.is_multiple_of(STATIC_REFRESH_ROUNDS)
        || devs.len() != st.ifaces.len()
        || devs.iter().any(|d| !st.ifaces.contains_key(d));
    if refresh {
        st.ifaces = devs
            .iter()
            .map(|d| (d.clone(), iface_static(&sys_path.join("class/net").join(d))))
            .collect();
    }
    for dev in devs {
        let base = sys_path.join("class/net").join(&dev);
        let attr = |name: &str| read(&base.join(name)).map(|v| v.trim().to_string());
        let num = |name: &str| attr(name).and_then(|v| v.parse::<f64>().ok());
        let fixed = st.ifaces.get(&dev).cloned().unwrap_or_default();
        let l = [("device", dev.as_str())];
        let operstate = attr("operstate").unwrap_or_default();
        s.gauge(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            &l,
            if operstate == "up" { 1.0 } else { 0.0 },
        );
        let info = [
            ("address", fixed.address.as_str()),
            ("broadcast", fixed.broadcast.as_str()),
            ("device", dev.as_str()),
            ("duplex", fixed.duplex.as_str()),
            ("ifalias", fixed.ifalias.as_str()),
            ("operstate", operstate.as_str()),
        ];
        s.gauge(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            &info,
            1.0,
        );
        for (name, help, v) in &fixed.props {
            s.gauge(name, help, &l, *v);
        }
        for (file, name) in [
            ("carrier", "node_network_carrier"),
            ("dormant", "node_network_dormant"),
        ] {
            if let Some(v) = num(file) {
                s.gauge(
                    name,
                    &format!(
                        "Network device property: {}",
                        name.trim_start_matches("node_network_")
                    ),
                    &l,
                    v,
                );
            }
        }
        for (file, name) in [
            ("carrier_changes", "node_network_carrier_changes_total"),
            ("carrier_up_count", "node_network_carrier_up_changes_total"),
            (
                "carrier_down_count",
                "node_network_carrier_down_changes_total",
            ),
        ] {
            if let Some(v) = num(file) {
                s.counter(
                    name,
                    &format!(
                        "Network device property: {}",
                        name.trim_start_matches("node_network_")
                    ),
                    &l,
                    v,
                );
            }
        }
    }
}

/// node-exporter 1.5's default exclusions for filesystems.
fn ignored_mount(mountpoint: &str, fstype: &str) -> bool {
    const TYPES: [&str; 24] = [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
    ];
    if TYPES.contains(&fstype) {
        return true;
    }
    for p in ["/dev", "/proc", "/sys"] {
        if mountpoint == p || mountpoint.starts_with(&format!("{p}/")) {
            return true;
        }
    }
    for p in [
        "/run/credentials/",
        "/var/lib/docker/",
        "/var/lib/containers/storage/",
    ] {
        if mountpoint.strip_prefix(p).is_some_and(|r| !r.is_empty()) {
            return true;
        }
    }
    false
}

/// `/proc/mounts` escapes spaces and friends as octal.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn filesystems(mounts: &str, rootfs: &Path, s: &mut Samples) {
    let mut seen = std::collections::HashSet::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let (device, mountpoint, fstype) = (unescape_mount(f[0]), unescape_mount(f[1]), f[2]);
        if ignored_mount(&mountpoint, fstype) || !seen.insert((device.clone(), mountpoint.clone()))
        {
            continue;
        }
        let path = rootfs.join(mountpoint.trim_start_matches('/'));
        let l = [
            ("device", device.as_str()),
            ("fstype", fstype),
            ("mountpoint", mountpoint.as_str()),
        ];
        let Some(st) = statvfs(&path) else {
            s.gauge(
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
                &l,
                1.0,
            );
            continue;
        };
        let bs = st.f_frsize as f64;
        let ro = f[3].split(',').any(|o| o == "ro");
        s.gauge(
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
            &l,
            st.f_blocks as f64 * bs,
        );
        s.gauge(
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            &l,
            st.f_bfree as f64 * bs,
        );
        s.gauge(
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            &l,
            st.f_bavail as f64 * bs,
        );
        s.gauge(
            "node_filesystem_files",
            "Filesystem total file nodes.",
            &l,
            st.f_files as f64,
        );
        s.gauge(
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
            &l,
            st.f_ffree as f64,
        );
        s.gauge(
            "node_filesystem_readonly",
            "Filesystem read-only status.",
            &l,
            if ro { 1.0 } else { 0.0 },
        );
        s.gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            &l,
            0.0,
        );
    }
}

fn statvfs(p: &Path) -> Option<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the
    // right size; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    // SAFETY: rc == 0 means the structure was filled in.
    (rc == 0).then(|| unsafe { st.assume_init() })
}

fn uname(s: &mut Samples) {
    let mut u = std::mem::MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: `u` points to writable memory of the right size; uname fills it on success.
    if unsafe { libc::uname(u.as_mut_ptr()) } != 0 {
        return;
    }
    // SAFETY: uname returned 0, so the structure is filled in.
    let u = unsafe { u.assume_init() };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (sys, node, rel, ver, mach, dom) = (
        field(&u.sysname),
        field(&u.nodename),
        field(&u.release),
        field(&u.version),
        field(&u.machine),
        field(&u.domainname),
    );
    s.gauge(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        &[
            ("domainname", &dom),
            ("machine", &mach),
            ("nodename", &node),
            ("release", &rel),
            ("sysname", &sys),
            ("version", &ver),
        ],
        1.0,
    );
}

pub fn parse_os_release(text: &str, s: &mut Samples) {
    let mut kv = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            kv.insert(k.trim(), v.trim().trim_matches('"').to_string());
        }
    }
    let g = |k: &str| kv.get(k).cloned().unwrap_or_default();
    let labels = [
        ("build_id", g("BUILD_ID")),
        ("id", g("ID")),
        ("id_like", g("ID_LIKE")),
        ("image_id", g("IMAGE_ID")),
        ("image_version", g("IMAGE_VERSION")),
        ("name", g("NAME")),
        ("pretty_name", g("PRETTY_NAME")),
        ("variant", g("VARIANT")),
        ("variant_id", g("VARIANT_ID")),
        ("version", g("VERSION")),
        ("version_codename", g("VERSION_CODENAME")),
        ("version_id", g("VERSION_ID")),
    ];
    let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.gauge(
        "node_os_info",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
        &l,
        1.0,
    );
    if let Ok(v) = g("VERSION_ID").parse::<f64>() {
        let (id, like, name) = (g("ID"), g("ID_LIKE"), g("NAME"));
        s.gauge(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            &[("id", &id), ("id_like", &like), ("name", &name)],
            v,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::procfs::ignored_disk;
    use super::*;

    fn find(s: &Samples, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        s.iter()
            .find(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|x| x.2)
    }

    #[test]
    fn parses_proc_files_like_node_exporter() {
        let mut s = Samples::default();
        parse_stat(
            "cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 100 0 200 300 0 0 0 0 0 0\nctxt 555\nbtime 1700000000\nprocs_running 3\n",
            100.0,
            &mut s,
        );
        assert_eq!(
            find(&s, "node_cpu_seconds_total", Some(("mode", "system"))),
            Some(2.0)
        );
        assert_eq!(find(&s, "node_context_switches_total", None), Some(555.0));
        assert_eq!(find(&s, "node_boot_time_seconds", None), Some(1.7e9));
        parse_meminfo(
            "MemTotal:       16384 kB\nActive(anon):   4 kB\nHugePages_Total:       0\n",
            &mut s,
        );
        assert_eq!(
            find(&s, "node_memory_MemTotal_bytes", None),
            Some(16_777_216.0)
        );
        assert_eq!(
            find(&s, "node_memory_Active_anon_bytes", None),
            Some(4096.0)
        );
        assert_eq!(find(&s, "node_memory_HugePages_Total", None), Some(0.0));
        parse_diskstats(
            "   8       0 sda 100 0 2000 50 10 0 80 5 0 60 55 0 0 0 0\n   8       1 sda1 1 0 8 0 0 0 0 0 0 0 0\n   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0\n",
            &mut s,
        );
        assert_eq!(
            find(&s, "node_disk_read_bytes_total", Some(("device", "sda"))),
            Some(1_024_000.0)
        );
        assert_eq!(
            find(
                &s,
                "node_disk_io_time_seconds_total",
                Some(("device", "sda"))
            ),
            Some(0.06)
        );
        assert!(
            find(
                &s,
                "node_disk_reads_completed_total",
                Some(("device", "sda1"))
            )
            .is_none()
        );
        assert!(
            find(
                &s,
                "node_disk_reads_completed_total",
                Some(("device", "loop0"))
            )
            .is_none()
        );
        parse_netdev(
            "Inter-|   Receive\n face |bytes\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n",
            &mut s,
        );
        assert_eq!(
            find(
                &s,
                "node_network_transmit_bytes_total",
                Some(("device", "eth0"))
            ),
            Some(2000.0)
        );
        parse_loadavg("0.50 0.25 0.10 1/100 4242\n", &mut s);
        assert_eq!(find(&s, "node_load5", None), Some(0.25));
        assert!(ignored_disk("nvme0n1p2") && !ignored_disk("nvme0n1") && ignored_disk("ram0"));
        assert!(ignored_mount("/proc/sys", "proc") && ignored_mount("/var/lib/docker/x", "ext4"));
        assert!(!ignored_mount("/", "ext4"));
        assert_eq!(unescape_mount("/mnt/a\\040b"), "/mnt/a b");
    }
}
