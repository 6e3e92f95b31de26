/*
 * A stand-in for libnvidia-ml.so.1 with scripted answers, for testing Sightline's GPU sampler
 * without a GPU (tests/gpu_sampler.rs builds it with `cc -shared -fPIC`). It exports the NVML
 * entry points the sampler calls, with the C signatures and struct layouts of nvml.h:
 *
 *   GPU 0: "NVIDIA H100 80GB HBM3", busy, one compute process (the calling process itself,
 *          4 GiB, 75% SM) and pid 1 (1 GiB), throttled by the software power cap, and one
 *          XID 79 event delivered once;
 *   GPU 1: "NVIDIA A100-SXM4-40GB", idle, no processes, no encoder utilisation
 *          (NOT_SUPPORTED), MIG mode on with two 1g.5gb instances (GPU instance ids 7 and 13).
 *
 * GPU 0's utilisation can be scripted: when NVML_STUB_UTIL_FILE names a file, each read returns
 * the number in it (the test rewrites it to change the GPU's load over time).
 *
 * nvmlDeviceGetFieldValues (the memory temperature) is deliberately not exported: the sampler
 * must treat a missing entry point as an unsupported field, not as an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int nvmlReturn_t;
enum {
    OK = 0,
    INVALID_ARGUMENT = 2,
    NOT_SUPPORTED = 3,
    INSUFFICIENT_SIZE = 7,
    TIMEOUT = 10,
};

struct nvmlDevice_st { unsigned index; };
typedef struct nvmlDevice_st *nvmlDevice_t;
struct nvmlEventSet_st { int registered_gpu0; };
typedef struct nvmlEventSet_st *nvmlEventSet_t;

typedef struct { unsigned gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
    char busIdLegacy[16];
    unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;
typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
    unsigned pid;
    unsigned long long timeStamp;
    unsigned smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;
typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType, eventData;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

static struct nvmlDevice_st gpus[2] = {{0}, {1}};
static struct nvmlDevice_st migs[2] = {{100}, {101}};
static struct nvmlEventSet_st sets[64];
static int next_set = 0;
static int xid_delivered = 0;
static const unsigned long long GiB = 1ULL << 30;

#define DEV(d) ((d) == &gpus[0] ? 0 : (d) == &gpus[1] ? 1 : -1)
#define MIG(d) ((d) == &migs[0] ? 0 : (d) == &migs[1] ? 1 : -1)
#define CHECK(d) do { if (DEV(d) < 0) return INVALID_ARGUMENT; } while (0)

static void copy(char *dst, unsigned len, const char *src) {
    strncpy(dst, src, len);
    if (len) dst[len - 1] = 0;
}

nvmlReturn_t nvmlInit_v2(void) { return OK; }
nvmlReturn_t nvmlInitWithFlags(unsigned flags) { (void)flags; return OK; }
nvmlReturn_t nvmlShutdown(void) { return OK; }
nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned len) { copy(v, len, "550.54.15"); return OK; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *n) { *n = 2; return OK; }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t *d) {
    if (i > 1) return INVALID_ARGUMENT;
    *d = &gpus[i];
    return OK;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned len) {
    if (MIG(d) >= 0) {
        copy(name, len, "NVIDIA A100-SXM4-40GB MIG 1g.5gb");
        return OK;
    }
    CHECK(d);
    copy(name, len, DEV(d) == 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA A100-SXM4-40GB");
    return OK;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned *current, unsigned *pending) {
    CHECK(d);
    *current = *pending = DEV(d) == 1 ? 1 : 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned *n) {
    CHECK(d);
    *n = DEV(d) == 1 ? 7 : 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned i, nvmlDevice_t *mig) {
    CHECK(d);
    if (DEV(d) != 1) return NOT_SUPPORTED;
    if (i > 1) return 6; /* NVML_ERROR_NOT_FOUND: an empty slot */
    *mig = &migs[i];
    return OK;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned *id) {
    if (MIG(d) < 0) return INVALID_ARGUMENT;
    *id = MIG(d) == 0 ? 7 : 13;
    return OK;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned len) {
    CHECK(d);
    copy(uuid, len, DEV(d) == 0 ? "GPU-11111111-2222-3333-4444-555555555555"
                                : "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
    return OK;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p) {
    CHECK(d);
    memset(p, 0, sizeof *p);
    p->bus = DEV(d) + 1;
    copy(p->busId, sizeof p->busId, DEV(d) == 0 ? "00000000:01:00.0" : "00000000:02:00.0");
    copy(p->busIdLegacy, sizeof p->busIdLegacy, DEV(d) == 0 ? "0000:01:00.0" : "0000:02:00.0");
    p->pciDeviceId = 0x233010de;
    p->pciSubSystemId = 0x16c110de;
    return OK;
}

static unsigned scripted_util(unsigned dflt) {
    const char *path = getenv("NVML_STUB_UTIL_FILE");
    if (path == NULL) return dflt;
    FILE *f = fopen(path, "r");
    if (f == NULL) return dflt;
    unsigned v = dflt;
    if (fscanf(f, "%u", &v) != 1) v = dflt;
    fclose(f);
    return v;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    CHECK(d);
    u->gpu = DEV(d) == 0 ? scripted_util(87) : 3;
    u->memory = DEV(d) == 0 ? 45 : 1;
    return OK;
}

nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t d, unsigned *u, unsigned *period) {
    CHECK(d);
    if (DEV(d) == 1) return NOT_SUPPORTED;
    *u = 12;
    *period = 1000000;
    return OK;
}

nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t d, unsigned *u, unsigned *period) {
    CHECK(d);
    *u = DEV(d) == 0 ? 7 : 0;
    *period = 1000000;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    if (MIG(d) >= 0) {
        m->total = 4864ULL << 20;
        m->used = MIG(d) == 0 ? 1 * GiB : 0;
        m->free = m->total - m->used;
        m->reserved = 0;
        return OK;
    }
    CHECK(d);
    m->total = DEV(d) == 0 ? 80 * GiB : 40 * GiB;
    m->used = DEV(d) == 0 ? 20 * GiB : 1 * GiB;
    m->free = m->total - m->used;
    m->reserved = 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned *t) {
    CHECK(d);
    if (sensor != 0) return INVALID_ARGUMENT;
    *t = DEV(d) == 0 ? 64 : 38;
    return OK;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned *mw) {
    CHECK(d);
    *mw = DEV(d) == 0 ? 312500 : 60000;
    return OK;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj) {
    CHECK(d);
    *mj = DEV(d) == 0 ? 123456789ULL : 5000000ULL;
    return OK;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned *mhz) {
    CHECK(d);
    /* NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 */
    if (type == 1) *mhz = DEV(d) == 0 ? 1980 : 1695;
    else if (type == 2) *mhz = DEV(d) == 0 ? 2619 : 6251;
    else return NOT_SUPPORTED;
    return OK;
}

nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t d, int counter, unsigned *kbs) {
    CHECK(d);
    *kbs = counter == 0 ? 1024 : 2048;
    return OK;
}

nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t d, unsigned *n) {
    CHECK(d);
    *n = DEV(d) == 0 ? 3 : 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter, unsigned long long *n) {
    CHECK(d);
    /* type: 0 corrected, 1 uncorrected; counter: 0 volatile, 1 aggregate */
    *n = (DEV(d) == 0 && type == 0) ? (counter == 0 ? 5 : 7) : 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned *corr, unsigned *unc,
                                       unsigned *pending, unsigned *failed) {
    CHECK(d);
    *corr = DEV(d) == 0 ? 1 : 0;
    *unc = 0;
    *pending = 0;
    *failed = 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *r) {
    CHECK(d);
    *r = DEV(d) == 0 ? 0x4 : 0x1;
    return OK;
}

static nvmlReturn_t procs(nvmlDevice_t d, unsigned *count, nvmlProcessInfo_t *out, int compute) {
    CHECK(d);
    unsigned n = (compute && DEV(d) == 0) ? 2 : 0;
    if (out == NULL || *count < n) {
        *count = n;
        return n ? INSUFFICIENT_SIZE : OK;
    }
    *count = n;
    if (n) {
        out[0].pid = (unsigned)getpid();
        out[0].usedGpuMemory = 4 * GiB;
        out[0].gpuInstanceId = 0xFFFFFFFF;
        out[0].computeInstanceId = 0xFFFFFFFF;
        out[1].pid = 1;
        out[1].usedGpuMemory = 1 * GiB;
        out[1].gpuInstanceId = 0xFFFFFFFF;
        out[1].computeInstanceId = 0xFFFFFFFF;
    }
    return OK;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned *c, nvmlProcessInfo_t *o) {
    return procs(d, c, o, 1);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned *c, nvmlProcessInfo_t *o) {
    return procs(d, c, o, 0);
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t d, nvmlProcessUtilizationSample_t *out,
                                             unsigned *count, unsigned long long last_seen) {
    CHECK(d);
    (void)last_seen;
    unsigned n = DEV(d) == 0 ? 1 : 0;
    if (out == NULL || *count < n) {
        *count = n;
        return n ? INSUFFICIENT_SIZE : OK;
    }
    *count = n;
    if (n) {
        out[0].pid = (unsigned)getpid();
        out[0].timeStamp = 1700000000000000ULL;
        out[0].smUtil = 75;
        out[0].memUtil = 40;
        out[0].encUtil = 0;
        out[0].decUtil = 0;
    }
    return OK;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    struct nvmlEventSet_st *s = &sets[next_set++ % 64];
    s->registered_gpu0 = 0;
    *set = s;
    return OK;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
    CHECK(d);
    /* nvmlEventTypeXidCriticalError = 0x8 */
    if (DEV(d) == 0 && (types & 0x8)) set->registered_gpu0 = 1;
    return OK;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned timeout_ms) {
    (void)timeout_ms;
    if (set->registered_gpu0 && !xid_delivered) {
        xid_delivered = 1;
        memset(data, 0, sizeof *data);
        data->device = &gpus[0];
        data->eventType = 0x8;
        data->eventData = 79;
        data->gpuInstanceId = 0xFFFFFFFF;
        data->computeInstanceId = 0xFFFFFFFF;
        return OK;
    }
    return TIMEOUT;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) { (void)set; return OK; }
