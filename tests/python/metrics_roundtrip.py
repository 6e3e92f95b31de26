"""Drives Sightline with the Python OpenTelemetry SDK's metrics exporters and checks what was
stored, through /api/v1/export, against the Prometheus compatibility rules.

Two providers: one cumulative over gRPC (service.namespace "shop", service.name "cart",
service.instance.id "cart-1", plus a deployment.environment attribute that must land on
target_info), one delta over HTTP/protobuf (service.name "billing"), each with a counter, an
up-down counter, a histogram with unit "s" and an observable gauge with unit "1". The delta provider
exports twice, so the stored values prove the delta-to-cumulative conversion. Exits non-zero with
the first mismatch.
"""

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableGauge,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

BOUNDS = [0.05, 0.1, 0.5, 1.0]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def provider(exporter, resource):
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(resource=resource, metric_readers=[reader])


def instruments(mp, gauge_value):
    meter = mp.get_meter("checkout-lib", "1.2.3")
    c = meter.create_counter("worker.read.crashes", description="crashes while reading")
    u = meter.create_up_down_counter("queue.depth", unit="{items}")
    h = meter.create_histogram(
        "http.server.duration", unit="s", explicit_bucket_boundaries_advisory=BOUNDS
    )
    meter.create_observable_gauge(
        "gpu.memory.utilization", callbacks=[lambda _opts: [Observation(gauge_value, {"gpu": "0"})]], unit="1"
    )
    return c, u, h


def export_series(api, selector):
    url = api + "/api/v1/export?" + urllib.parse.urlencode({"match[]": selector})
    with urllib.request.urlopen(url, timeout=10) as r:
        lines = [json.loads(l) for l in r.read().decode().splitlines() if l.strip()]
    return {frozenset(x["metric"].items()): x for x in lines}


def last_value(series, labels):
    key = frozenset(labels.items())
    if key not in series:
        names = sorted(json.dumps(dict(k), sort_keys=True) for k in series)
        fail(f"missing series {json.dumps(labels, sort_keys=True)}; stored:\n  " + "\n  ".join(names))
    return series[key]["values"][-1]


def expect(series, labels, want):
    got = last_value(series, labels)
    if abs(float(got) - float(want)) > 1e-9:
        fail(f"{labels}: stored {got}, want {want}")


def check(api, job, instance, scope_labels, counter_total, updown, observations, gauge, extra_resource):
    sel = '{job="%s"}' % job
    series = export_series(api, sel)
    base = {"job": job}
    if instance:
        base["instance"] = instance
    scoped = dict(base, otel_scope_name="checkout-lib", otel_scope_version="1.2.3") if scope_labels else dict(base)
    expect(series, dict(scoped, __name__="worker_read_crashes_total", kind="disk"), counter_total)
    expect(series, dict(scoped, __name__="queue_depth"), updown)
    expect(series, dict(scoped, __name__="gpu_memory_utilization_ratio", gpu="0"), gauge)
    cum = 0
    for le in BOUNDS:
        cum = sum(1 for v in observations if v <= le)
        le_text = ("%g" % le) if le != int(le) else str(int(le))
        expect(series, dict(scoped, __name__="http_server_duration_seconds_bucket", route="/pay", le=le_text), cum)
    expect(series, dict(scoped, __name__="http_server_duration_seconds_bucket", route="/pay", le="+Inf"), len(observations))
    expect(series, dict(scoped, __name__="http_server_duration_seconds_count", route="/pay"), len(observations))
    expect(series, dict(scoped, __name__="http_server_duration_seconds_sum", route="/pay"), sum(observations))
    if extra_resource is not None:
        # Resource.create adds telemetry.sdk.* attributes: they belong on target_info too.
        infos = [dict(k) for k in series if dict(k)["__name__"] == "target_info"]
        if len(infos) != 1:
            fail(f"{job}: want one target_info series, got {infos}")
        want_info = dict(base, __name__="target_info", telemetry_sdk_language="python", telemetry_sdk_name="opentelemetry", **extra_resource)
        if any(infos[0].get(k) != v for k, v in want_info.items()) or "service_name" in infos[0]:
            fail(f"{job}: target_info {infos[0]} does not carry {want_info} (and no service_name)")
        expect(series, infos[0], 1)
    names = sorted({dict(k)["__name__"] for k in series})
    want = sorted(
        ["worker_read_crashes_total", "queue_depth", "gpu_memory_utilization_ratio"]
        + ["http_server_duration_seconds_" + s for s in ("bucket", "count", "sum")]
        + ["target_info"]
    )
    if names != want:
        fail(f"{job}: metric names {names}, want {want}")
    print(f"{job}: {len(series)} series as the compatibility rules give")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--http", required=True)
    ap.add_argument("--api", required=True)
    a = ap.parse_args()

    # Cumulative over gRPC.
    res = Resource.create(
        {
            "service.namespace": "shop",
            "service.name": "cart",
            "service.instance.id": "cart-1",
            "deployment.environment": "test",
        }
    )
    mp = provider(GrpcExporter(endpoint=a.grpc, insecure=True), res)
    c, u, h = instruments(mp, 0.75)
    c.add(3, {"kind": "disk"})
    c.add(4, {"kind": "disk"})
    u.add(10)
    u.add(-4)
    obs = [0.03, 0.07, 0.2, 0.9, 3.0]
    # The last observation is made inside a sampled span: the SDK attaches it as an exemplar.
    tracer = TracerProvider().get_tracer("checkout")
    for v in obs[:-1]:
        h.record(v, {"route": "/pay"})
    with tracer.start_as_current_span("pay") as span:
        h.record(obs[-1], {"route": "/pay"})
        ctx = span.get_span_context()
        want_trace, want_span = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
    if not mp.force_flush(10_000):
        fail("gRPC flush failed")
    mp.shutdown()

    # Delta over HTTP, exported twice.
    delta = {
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
        ObservableGauge: AggregationTemporality.DELTA,
    }
    res2 = Resource.create({"service.name": "billing"})
    mp2 = provider(HttpExporter(endpoint=a.http + "/v1/metrics", preferred_temporality=delta), res2)
    c2, u2, h2 = instruments(mp2, 0.5)
    c2.add(5, {"kind": "disk"})
    u2.add(2)
    h2.record(0.08, {"route": "/pay"})
    if not mp2.force_flush(10_000):
        fail("HTTP flush 1 failed")
    time.sleep(0.05)
    c2.add(6, {"kind": "disk"})
    u2.add(-1)
    h2.record(0.6, {"route": "/pay"})
    h2.record(2.5, {"route": "/pay"})
    if not mp2.force_flush(10_000):
        fail("HTTP flush 2 failed")
    mp2.shutdown()

    check(a.api, "shop/cart", "cart-1", True, 7, 6, obs, 0.75, {"deployment_environment": "test"})
    # The exemplar is kept on the +Inf bucket (3.0 is above every bound), linked to the span.
    q = urllib.parse.urlencode({"query": 'http_server_duration_seconds_bucket{job="shop/cart"}'})
    with urllib.request.urlopen(a.api + "/api/v1/query_exemplars?" + q, timeout=10) as r:
        ex = json.loads(r.read())["data"]
    got = [(e["seriesLabels"]["le"], x["labels"]["trace_id"], x["labels"]["span_id"], float(x["value"])) for e in ex for x in e["exemplars"]]
    if ("+Inf", want_trace, want_span, 3.0) not in got:
        fail(f"exemplar for trace {want_trace} not found: {got}")
    print("exemplar links to trace", want_trace)
    # Newer SDKs give every resource a random service.instance.id: that is the instance label.
    check(a.api, "billing", res2.attributes.get("service.instance.id"), True, 11, 1, [0.08, 0.6, 2.5], 0.5, {})
    print("ok")


if __name__ == "__main__":
    main()
