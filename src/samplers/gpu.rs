//! The GPU sampler: every NVIDIA GPU (and MIG instance) through NVML, under dcgm-exporter's
//! metric names and labels (`job="dcgm"`), plus what dcgm-exporter does not give: GPU memory and
//! utilisation per process, with the process's executable name and container id. XID errors and
//! throttling become counters and warnings in the log.
//!
//! NVML (`libnvidia-ml.so.1`) is loaded at run time by `nvml-wrapper`; without a driver the
//! sampler logs one line and stays off, and the rest of Sightline does not notice. A field a GPU
//! does not support (or a driver too old to export) is skipped for that GPU and listed once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{EventSet, Nvml};
use tokio_util::sync::CancellationToken;

use super::SamplerCounters;
use super::emit::{Emitter, Samples};
use crate::base::clock::now_ms;
use crate::config::GpuConfig;
use crate::tsdb::Tsdb;

/// NVML's field id for the memory (HBM) temperature.
const FI_DEV_MEMORY_TEMP: u32 = 82;

/// Loads NVML: the configured library, or the driver's.
pub fn load(library: Option<&std::path::Path>) -> Result<Nvml, NvmlError> {
    match library {
        Some(p) => Nvml::builder().lib_path(p.as_os_str()).init(),
        None => Nvml::init(),
    }
}

/// A copy of a shared result (NVML errors are not `Clone`): "unsupported" stays so.
fn cp<T: Copy>(r: &Result<T, NvmlError>) -> Result<T, NvmlError> {
    match r {
        Ok(v) => Ok(*v),
        Err(e) if unsupported(e) => Err(NvmlError::NotSupported),
        Err(_) => Err(NvmlError::Unknown),
    }
}

/// Errors that mean "this GPU cannot give this field", not "something broke".
fn unsupported(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound
    )
}

/// What the sampler remembers between rounds.
#[derive(Default)]
pub struct GpuState {
    /// Fields found unsupported, per GPU index (logged once each).
    unsupported: HashMap<u32, BTreeSet<&'static str>>,
    /// Last XID seen per GPU (dcgm-exporter reports the last value).
    last_xid: HashMap<u32, u64>,
    /// XID errors per (GPU, xid).
    xid_counts: HashMap<(u32, u64), u64>,
    /// Throttle reasons active in the last round, per GPU, and episodes per (GPU, reason).
    throttle_prev: HashMap<u32, u64>,
    throttle_events: HashMap<(u32, &'static str), u64>,
    /// Newest process-utilisation sample time seen per GPU (µs).
    last_util_ts: HashMap<u32, u64>,
    /// Events of this round (XID errors, throttling) for the log store: body and attributes.
    pub events: Vec<(String, Vec<(&'static str, String)>)>,
    /// When the previous round was taken (ms), for the time between rounds.
    last_round_ms: Option<i64>,
    /// GPU seconds and joules attributed to services, per (service, GPU index).
    service_seconds: HashMap<(Arc<str>, u32), f64>,
    service_joules: HashMap<(Arc<str>, u32), f64>,
}

/// How a round attributes per-process GPU use to services (the process map of
/// `spanmetrics`), and the time since the previous round.
pub struct Attribution<'a> {
    pub processes: Option<&'a crate::spanmetrics::ProcessMap>,
    pub dt_seconds: Option<f64>,
}

#[derive(Clone, Copy)]
struct UtilPair {
    gpu: u32,
    memory: u32,
}

const THROTTLE_REASONS: [(u64, &str); 9] = [
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// The per-GPU labels dcgm-exporter puts on every series.
struct GpuLabels {
    index: String,
    uuid: String,
    device: String,
    model: String,
    host: String,
    pci: String,
    driver: String,
}

impl GpuLabels {
    fn pairs(&self) -> Vec<(&str, &str)> {
        vec![
            ("gpu", &self.index),
            ("UUID", &self.uuid),
            ("device", &self.device),
            ("modelName", &self.model),
            ("Hostname", &self.host),
            ("pci_bus_id", &self.pci),
            ("DCGM_FI_DRIVER_VERSION", &self.driver),
        ]
    }
}

/// One round over every GPU, taken at `t` (ms). `proc_path` is where `/proc` is, for process
/// names and cgroups.
pub fn collect(
    nvml: &Nvml,
    xid_sets: &[(u32, EventSet<'_>)],
    st: &mut GpuState,
    host: &str,
    proc_path: &std::path::Path,
    t: i64,
    process_map: Option<&crate::spanmetrics::ProcessMap>,
) -> Samples {
    let mut s = Samples::default();
    let attr = Attribution {
        processes: process_map,
        dt_seconds: st.last_round_ms.map(|l| (t - l).max(0) as f64 / 1000.0),
    };
    st.last_round_ms = Some(t);
    let driver = nvml.sys_driver_version().unwrap_or_default();
    let count = match nvml.device_count() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "NVML could not count GPUs");
            return s;
        }
    };
    for i in 0..count {
        let Ok(dev) = nvml.device_by_index(i) else {
            continue;
        };
        let labels = GpuLabels {
            index: i.to_string(),
            uuid: dev.uuid().unwrap_or_default(),
            device: format!("nvidia{i}"),
            model: dev.name().unwrap_or_default(),
            host: host.to_string(),
            pci: dev.pci_info().map(|p| p.bus_id).unwrap_or_default(),
            driver: driver.clone(),
        };
        let l = labels.pairs();
        // Read once: recorded as DCGM_FI_DEV_POWER_USAGE and used to attribute energy to services.
        let power_mw = dev.power_usage();
        let mut missing: Vec<&'static str> = Vec::new();
        // Records a field, or remembers that this GPU lacks it.
        macro_rules! field {
            ($name:expr, $kind:ident, $help:expr, $e:expr) => {
                match $e {
                    Ok(v) => s.$kind($name, $help, &l, v as f64),
                    Err(e) if unsupported(&e) => missing.push($name),
                    Err(e) => tracing::debug!(gpu = i, field = $name, error = %e, "NVML read failed"),
                }
            };
        }
        let util = dev.utilization_rates().map(|u| UtilPair {
            gpu: u.gpu,
            memory: u.memory,
        });
        field!(
            "DCGM_FI_DEV_GPU_UTIL",
            gauge,
            "GPU utilization (in %).",
            cp(&util).map(|u| u.gpu)
        );
        field!(
            "DCGM_FI_DEV_MEM_COPY_UTIL",
            gauge,
            "Memory utilization (in %).",
            cp(&util).map(|u| u.memory)
        );
        field!(
            "DCGM_FI_DEV_ENC_UTIL",
            gauge,
            "Encoder utilization (in %).",
            dev.encoder_utilization().map(|u| u.utilization)
        );
        field!(
            "DCGM_FI_DEV_DEC_UTIL",
            gauge,
            "Decoder utilization (in %).",
            dev.decoder_utilization().map(|u| u.utilization)
        );
        let mem = dev.memory_info().map(|m| (m.used, m.free, m.total));
        const MIB: u64 = 1 << 20;
        field!(
            "DCGM_FI_DEV_FB_USED",
            gauge,
            "Framebuffer memory used (in MiB).",
            cp(&mem).map(|m| m.0 / MIB)
        );
        field!(
            "DCGM_FI_DEV_FB_FREE",
            gauge,
            "Framebuffer memory free (in MiB).",
            cp(&mem).map(|m| m.1 / MIB)
        );
        field!(
            "DCGM_FI_DEV_FB_TOTAL",
            gauge,
            "Framebuffer memory total (in MiB).",
            cp(&mem).map(|m| m.2 / MIB)
        );
        field!(
            "DCGM_FI_DEV_GPU_TEMP",
            gauge,
            "GPU temperature (in C).",
            dev.temperature(TemperatureSensor::Gpu)
        );
        let mem_temp = dev
            .field_values_for(&[FieldId(FI_DEV_MEMORY_TEMP)])
            .and_then(|mut v| v.pop().unwrap_or(Err(NvmlError::NotSupported)))
            .and_then(|x: FieldValueSample| x.value)
            .map(|v| match v {
                nvml_wrapper::enums::device::SampleValue::F64(f) => f,
                nvml_wrapper::enums::device::SampleValue::U32(u) => u as f64,
                nvml_wrapper::enums::device::SampleValue::U64(u) => u as f64,
                nvml_wrapper::enums::device::SampleValue::I64(u) => u as f64,
            });
        field!(
            "DCGM_FI_DEV_MEMORY_TEMP",
            gauge,
            "Memory temperature (in C).",
            mem_temp
        );
        field!(
            "DCGM_FI_DEV_POWER_USAGE",
            gauge,
            "Power draw (in W).",
            cp(&power_mw).map(|mw| mw as f64 / 1000.0)
        );
        field!(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            counter,
            "Total energy consumption since boot (in mJ).",
            dev.total_energy_consumption()
        );
        field!(
            "DCGM_FI_DEV_SM_CLOCK",
            gauge,
            "SM clock frequency (in MHz).",
            dev.clock_info(Clock::SM)
        );
        field!(
            "DCGM_FI_DEV_MEM_CLOCK",
            gauge,
            "Memory clock frequency (in MHz).",
            dev.clock_info(Clock::Memory)
        );
        field!(
            "DCGM_FI_DEV_PCIE_TX_THROUGHPUT",
            gauge,
            "PCIe transmit throughput (in KB/s).",
            dev.pcie_throughput(PcieUtilCounter::Send)
        );
        field!(
            "DCGM_FI_DEV_PCIE_RX_THROUGHPUT",
            gauge,
            "PCIe receive throughput (in KB/s).",
            dev.pcie_throughput(PcieUtilCounter::Receive)
        );
        field!(
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
            counter,
            "Total number of PCIe retries.",
            dev.pcie_replay_counter()
        );
        // The four ECC totals, as data: single/double bit by volatile/persistent counter.
        for (name, help, error, counter) in [
            (
                "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                "Total number of single-bit volatile ECC errors.",
                MemoryError::Corrected,
                EccCounter::Volatile,
            ),
            (
                "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                "Total number of double-bit volatile ECC errors.",
                MemoryError::Uncorrected,
                EccCounter::Volatile,
            ),
            (
                "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
                "Total number of single-bit persistent ECC errors.",
                MemoryError::Corrected,
                EccCounter::Aggregate,
            ),
            (
                "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
                "Total number of double-bit persistent ECC errors.",
                MemoryError::Uncorrected,
                EccCounter::Aggregate,
            ),
        ] {
            field!(name, counter, help, dev.total_ecc_errors(error, counter));
        }
        match remapped_rows(nvml, &dev) {
            Ok((corr, unc, pending, failed)) => {
                s.counter(
                    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
                    "Number of remapped rows for correctable errors.",
                    &l,
                    corr as f64,
                );
                s.counter(
                    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
                    "Number of remapped rows for uncorrectable errors.",
                    &l,
                    unc as f64,
                );
                s.gauge(
                    "DCGM_FI_DEV_ROW_REMAP_PENDING",
                    "Whether remapping of rows is pending.",
                    &l,
                    pending as f64,
                );
                s.gauge(
                    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
                    "Whether remapping of rows has failed.",
                    &l,
                    failed as f64,
                );
            }
            Err(e) if unsupported(&e) => missing.push("DCGM_FI_DEV_*_REMAPPED_ROWS"),
            Err(e) => tracing::debug!(gpu = i, error = %e, "NVML remapped rows read failed"),
        }
        // Throttling: the current mask, and an episode counted each time a reason turns on.
        match dev.current_throttle_reasons() {
            Ok(r) => {
                let bits = r.bits();
                s.gauge(
                    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
                    "Current clock throttle reasons (bitmask).",
                    &l,
                    bits as f64,
                );
                let prev = st.throttle_prev.insert(i, bits).unwrap_or(0);
                for (bit, name) in THROTTLE_REASONS {
                    if bits & bit != 0 && prev & bit == 0 && bit != 0x1 {
                        *st.throttle_events.entry((i, name)).or_default() += 1;
                        tracing::warn!(gpu = i, uuid = %labels.uuid, reason = name, "GPU clocks throttled");
                        st.events.push((
                            format!("GPU {i} clocks throttled: {name}"),
                            vec![
                                ("gpu", i.to_string()),
                                ("gpu.uuid", labels.uuid.clone()),
                                ("throttle.reason", name.to_string()),
                            ],
                        ));
                    }
                }
            }
            Err(e) if unsupported(&e) => missing.push("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"),
            Err(e) => tracing::debug!(gpu = i, error = %e, "NVML throttle reasons read failed"),
        }
        for ((g, reason), n) in &st.throttle_events {
            if *g == i {
                let mut ll = l.clone();
                ll.push(("reason", reason));
                s.counter(
                    "sightline_gpu_throttle_episodes_total",
                    "Times a clock throttle reason turned on.",
                    &ll,
                    *n as f64,
                );
            }
        }
        // XID errors arrive as events, drained each round.
        if let Some((_, set)) = xid_sets.iter().find(|(g, _)| *g == i) {
            drain_xid_events(set, i, st, &labels.uuid);
        }
        if let Some(x) = st.last_xid.get(&i) {
            s.gauge(
                "DCGM_FI_DEV_XID_ERRORS",
                "Value of the last XID error encountered.",
                &l,
                *x as f64,
            );
        }
        for ((g, xid), n) in &st.xid_counts {
            if *g == i {
                let x = xid.to_string();
                let mut ll = l.clone();
                ll.push(("xid", &x));
                s.counter(
                    "sightline_gpu_xid_errors_total",
                    "XID errors reported by the driver, by XID.",
                    &ll,
                    *n as f64,
                );
            }
        }
        let power_w = power_mw.as_ref().ok().map(|mw| f64::from(*mw) / 1000.0);
        processes(&dev, i, &labels, st, proc_path, &attr, power_w, &mut s);
        for ((svc, g), secs) in &st.service_seconds {
            if *g == i {
                let ll = [
                    ("gpu", labels.index.as_str()),
                    ("UUID", labels.uuid.as_str()),
                    ("service", &**svc),
                ];
                s.counter(
                    "sightline_gpu_service_seconds_total",
                    "GPU time used by a service's processes: SM utilisation times seconds.",
                    &ll,
                    *secs,
                );
                if let Some(j) = st.service_joules.get(&(svc.clone(), *g)) {
                    s.counter(
                        "sightline_gpu_service_energy_joules_total",
                        "GPU energy attributed to a service: power times seconds times its share of the GPU's process utilisation.",
                        &ll,
                        *j,
                    );
                }
            }
        }
        mig_instances(nvml, &dev, &labels, &mut s);
        let set = st.unsupported.entry(i).or_default();
        let new: Vec<&str> = missing.iter().copied().filter(|m| set.insert(m)).collect();
        if !new.is_empty() {
            tracing::info!(gpu = i, model = %labels.model, fields = %new.join(", "), "GPU does not support these fields; they are skipped");
        }
    }
    s
}

/// MIG instances of a GPU in MIG mode: their framebuffer, with dcgm-exporter's `GPU_I_ID` and
/// `GPU_I_PROFILE` labels beside the parent GPU's.
fn mig_instances(nvml: &Nvml, dev: &nvml_wrapper::Device<'_>, labels: &GpuLabels, s: &mut Samples) {
    if !dev.mig_mode().is_ok_and(|m| m.current == 1) {
        return;
    }
    let Some(get_id) = nvml.lib().nvmlDeviceGetGpuInstanceId.as_ref().ok() else {
        return;
    };
    for j in 0..dev.mig_device_count().unwrap_or(0) {
        // Empty slots answer NOT_FOUND.
        let Ok(mig) = dev.mig_device_by_index(j) else {
            continue;
        };
        let mut id = 0u32;
        // SAFETY: the MIG handle is live for the borrow of `mig`; `id` is a writable uint.
        let rc = unsafe { get_id(mig.handle(), &mut id) };
        if nvml_wrapper::error::nvml_try(rc).is_err() {
            continue;
        }
        let name = mig.name().unwrap_or_default();
        let profile = name
            .rsplit_once("MIG ")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        let gi = id.to_string();
        let mut l = labels.pairs();
        l.push(("GPU_I_PROFILE", &profile));
        l.push(("GPU_I_ID", &gi));
        if let Ok(m) = mig.memory_info() {
            const MIB: u64 = 1 << 20;
            s.gauge(
                "DCGM_FI_DEV_FB_USED",
                "Framebuffer memory used (in MiB).",
                &l,
                (m.used / MIB) as f64,
            );
            s.gauge(
                "DCGM_FI_DEV_FB_FREE",
                "Framebuffer memory free (in MiB).",
                &l,
                (m.free / MIB) as f64,
            );
            s.gauge(
                "DCGM_FI_DEV_FB_TOTAL",
                "Framebuffer memory total (in MiB).",
                &l,
                (m.total / MIB) as f64,
            );
        }
    }
}

fn remapped_rows(
    nvml: &Nvml,
    dev: &nvml_wrapper::Device<'_>,
) -> Result<(u32, u32, u32, u32), NvmlError> {
    let f = nvml
        .lib()
        .nvmlDeviceGetRemappedRows
        .as_ref()
        .map_err(|_| NvmlError::FunctionNotFound)?;
    let (mut a, mut b, mut c, mut d) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: the device handle is live for the borrow of `dev`, and the four pointers are
    // valid, writable `unsigned int`s as the NVML signature requires.
    let rc = unsafe { f(dev.handle(), &mut a, &mut b, &mut c, &mut d) };
    nvml_wrapper::error::nvml_try(rc)?;
    Ok((a, b, c, d))
}

/// One XID event set per GPU, registered once at start so no event between rounds is missed;
/// GPUs that cannot deliver events are left out.
fn register_xid_events(nvml: &Nvml) -> Vec<(u32, EventSet<'_>)> {
    let mut sets = Vec::new();
    for i in 0..nvml.device_count().unwrap_or(0) {
        let (Ok(dev), Ok(set)) = (nvml.device_by_index(i), nvml.create_event_set()) else {
            continue;
        };
        match dev.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(set) => sets.push((i, set)),
            Err(e) => tracing::info!(gpu = i, error = %e.error, "GPU cannot report XID events"),
        }
    }
    sets
}

/// Drains the XID events waiting for GPU `i`.
fn drain_xid_events(set: &EventSet<'_>, i: u32, st: &mut GpuState, uuid: &str) {
    while let Ok(ev) = set.wait(0) {
        if ev.event_type.contains(EventTypes::CRITICAL_XID_ERROR) {
            let xid = match ev.event_data {
                Some(nvml_wrapper::enums::event::XidError::Value(x)) => x,
                _ => 0,
            };
            st.last_xid.insert(i, xid);
            *st.xid_counts.entry((i, xid)).or_default() += 1;
            tracing::warn!(gpu = i, uuid = %uuid, xid, "GPU XID error");
            st.events.push((
                format!("GPU {i} XID error {xid}"),
                vec![
                    ("gpu", i.to_string()),
                    ("gpu.uuid", uuid.to_string()),
                    ("gpu.xid", xid.to_string()),
                ],
            ));
        }
    }
}

/// The container a process runs in, from its cgroup path (Docker, containerd, CRI-O, Podman).
pub fn container_id(cgroup: &str) -> Option<String> {
    for line in cgroup.lines() {
        let path = line.rsplit(':').next().unwrap_or("");
        for part in path.rsplit('/') {
            let p = part.trim_end_matches(".scope");
            let id = p.rsplit_once('-').map(|(_, id)| id).unwrap_or(p);
            if id.len() == 64 && id.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Some(id.to_string());
            }
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn processes(
    dev: &nvml_wrapper::Device<'_>,
    i: u32,
    labels: &GpuLabels,
    st: &mut GpuState,
    proc_path: &std::path::Path,
    attr: &Attribution<'_>,
    power_w: Option<f64>,
    s: &mut Samples,
) {
    let mut procs: Vec<(u32, Option<u64>)> = Vec::new();
    for p in [
        dev.running_compute_processes(),
        dev.running_graphics_processes(),
    ]
    .into_iter()
    .flatten()
    .flatten()
    {
        let mem = match p.used_gpu_memory {
            UsedGpuMemory::Used(b) => Some(b),
            UsedGpuMemory::Unavailable => None,
        };
        if !procs.iter().any(|(pid, _)| *pid == p.pid) {
            procs.push((p.pid, mem));
        }
    }
    let since = st.last_util_ts.get(&i).copied();
    let util: HashMap<u32, u32> = match dev.process_utilization_stats(since) {
        Ok(v) => {
            if let Some(m) = v.iter().map(|x| x.timestamp).max() {
                st.last_util_ts.insert(i, m);
            }
            v.into_iter().map(|x| (x.pid, x.sm_util)).collect()
        }
        Err(_) => HashMap::new(),
    };
    // Utilisation summed over this GPU's processes: each one's share of the power.
    let total_util: u32 = procs.iter().filter_map(|(p, _)| util.get(p)).sum();
    for (pid, mem) in procs {
        let pid_s = pid.to_string();
        let dir = proc_path.join(pid.to_string());
        let name = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        let cid = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|c| container_id(&c))
            .unwrap_or_default();
        let l = [
            ("gpu", labels.index.as_str()),
            ("UUID", labels.uuid.as_str()),
            ("pid", pid_s.as_str()),
            ("process", name.as_str()),
            ("container_id", cid.as_str()),
        ];
        if let Some(b) = mem {
            s.gauge(
                "sightline_gpu_process_memory_bytes",
                "GPU memory used by a process.",
                &l,
                b as f64,
            );
        }
        if let (Some(map), Some(dt), Some(u)) = (attr.processes, attr.dt_seconds, util.get(&pid))
            && let Some(svc) =
                map.service(pid, (!cid.is_empty()).then_some(cid.as_str()), &labels.host)
        {
            *st.service_seconds.entry((svc.clone(), i)).or_default() += f64::from(*u) / 100.0 * dt;
            let share = if total_util > 0 {
                f64::from(*u) / f64::from(total_util)
            } else {
                0.0
            };
            let e = st.service_joules.entry((svc, i)).or_default();
            if let Some(p) = power_w {
                *e += p * dt * share;
            }
        }
        if let Some(u) = util.get(&pid) {
            s.gauge(
                "sightline_gpu_process_utilization_ratio",
                "Share of the GPU's SMs a process kept busy over the last sampling period.",
                &l,
                *u as f64 / 100.0,
            );
        }
    }
}

/// Where GPU events go as log records (beside the traces), and the runtime to reach it from.
pub struct EventLog {
    pub store: crate::traces::TraceStore,
    pub rt: tokio::runtime::Handle,
}

impl EventLog {
    fn write(&self, host: &str, events: Vec<(String, Vec<(&'static str, String)>)>) {
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, InstrumentationScope, KeyValue, any_value,
        };
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        if events.is_empty() {
            return;
        }
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let records = events
            .into_iter()
            .map(|(body, attrs)| LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                severity_number: 13,
                severity_text: "WARN".into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body)),
                }),
                attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            })
            .collect();
        let rl = ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "sightline-gpu"), kv("host.name", host)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "sightline.samplers.gpu".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        };
        if let Err(e) = self.rt.block_on(self.store.append_logs(vec![rl])) {
            tracing::warn!(error = %e, "GPU events not stored as logs");
        }
    }
}

/// The sampler thread: loads NVML, then samples every `interval` until `token` fires.
pub fn run(
    cfg: GpuConfig,
    db: Tsdb,
    counters: Arc<SamplerCounters>,
    token: CancellationToken,
    proc_path: std::path::PathBuf,
    log: Option<EventLog>,
    processes: Option<Arc<crate::spanmetrics::ProcessMap>>,
) {
    let nvml = match load(cfg.library.as_deref()) {
        Ok(n) => n,
        Err(e) => {
            let lib = cfg
                .library
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "libnvidia-ml.so.1".into());
            tracing::info!(error = %e, "no NVIDIA driver found ({lib}): GPU sampler off");
            return;
        }
    };
    counters.gpu_up.store(1, Relaxed);
    let host = super::host::host_name();
    let mut emitter = Emitter::new("dcgm", &host);
    let mut st = GpuState::default();
    let xid_sets = register_xid_events(&nvml);
    super::every(
        cfg.interval,
        &token,
        &counters.gpu_cpu_nanos,
        &counters.gpu_rounds,
        || {
            let t = now_ms();
            let samples = collect(
                &nvml,
                &xid_sets,
                &mut st,
                &host,
                &proc_path,
                t,
                processes.as_deref(),
            );
            if let Some(l) = &log {
                l.write(&host, std::mem::take(&mut st.events));
            } else {
                st.events.clear();
            }
            let batch = emitter.batch(samples, t);
            if let Err(e) = db.append_blocking(batch) {
                tracing::warn!(error = %e, "GPU samples not stored");
            }
        },
    );
    let _ = db.append_blocking(emitter.finish(now_ms()));
    counters.gpu_up.store(0, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_from_cgroups() {
        let id = "a".repeat(64);
        assert_eq!(
            container_id(&format!("0::/system.slice/docker-{id}.scope\n")),
            Some(id.clone())
        );
        assert_eq!(
            container_id(&format!("12:memory:/kubepods/besteffort/pod1/{id}\n")),
            Some(id.clone())
        );
        assert_eq!(
            container_id(&format!("0::/kubepods.slice/cri-containerd-{id}.scope")),
            Some(id)
        );
        assert_eq!(
            container_id("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
    }
}
