#!/usr/bin/env python3
"""Sends traces with the Python OpenTelemetry SDK and checks them through Sightline's Jaeger API.

Three services (frontend -> backend -> postgres) pass W3C trace context to each other through a
carrier dict, as they would over HTTP headers. Each run exports over OTLP/gRPC and OTLP/HTTP
(protobuf); every span the SDK emitted must come back exactly through /api/traces/{id}, searches
must find exactly the right traces, and /api/dependencies must show exactly the cross-service edges.

Usage (also the README's "send some traces" example, against a running Sightline):
    python3 tests/python/sdk_roundtrip.py --grpc localhost:4317 \
        --http http://localhost:4318 --api http://localhost:8080
Exits non-zero with a message on the first mismatch.
"""
import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def get(api, path):
    try:
        with urllib.request.urlopen(api + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait(api, path, pred, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        status, body = get(api, path)
        if status == 200 and pred(body):
            return body
        if time.time() > deadline:
            fail(f"timed out waiting on {path}: {body}")
        time.sleep(0.1)


def provider(service, exporter, memory, run):
    p = TracerProvider(resource=Resource.create({"service.name": service, "test.run": run}))
    p.add_span_processor(BatchSpanProcessor(exporter))
    p.add_span_processor(SimpleSpanProcessor(memory))
    return p


def one_request(fe, be, db, route, slow, failing):
    prop = TraceContextTextMapPropagator()
    t0 = time.time_ns()
    ft = fe.get_tracer("shop.frontend", "1.2.3")
    root = ft.start_span(f"GET {route}", kind=SpanKind.SERVER, start_time=t0,
                         attributes={"http.route": route, "http.status_code": 500 if failing else 200})
    call = ft.start_span("call backend", context=set_span_in_context(root), kind=SpanKind.CLIENT,
                         start_time=t0 + 1_000_000)
    call.add_event("sent", {"bytes": 42}, timestamp=t0 + 1_500_000)
    carrier = {}
    prop.inject(carrier, context=set_span_in_context(call))

    bt = be.get_tracer("shop.backend")
    handler = bt.start_span("POST /charge", context=prop.extract(carrier), kind=SpanKind.SERVER,
                            start_time=t0 + 2_000_000,
                            attributes={"payment.amount": 12.5, "payment.currency": "EUR", "retry": False,
                                        "items": ["a", "b"]})
    if failing:
        handler.set_status(Status(StatusCode.ERROR, "card declined"))
    carrier2 = {}
    prop.inject(carrier2, context=set_span_in_context(handler))

    dt = db.get_tracer("sql")
    q = dt.start_span("SELECT accounts", context=prop.extract(carrier2), kind=SpanKind.CLIENT,
                      start_time=t0 + 3_000_000, attributes={"db.system": "postgresql"})
    q.end(end_time=t0 + 5_000_000)
    dur = 300_000_000 if slow else 20_000_000
    handler.end(end_time=t0 + 2_000_000 + dur)
    call.end(end_time=t0 + 3_000_000 + dur)
    root.end(end_time=t0 + 4_000_000 + dur)


def expected_tag(value):
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "int64", value
    if isinstance(value, float):
        return "float64", value
    if isinstance(value, (list, tuple)):
        return "string", json.dumps(list(value), separators=(",", ":"))
    return "string", value


def check_span(sdk, trace):
    sid = format(sdk.context.span_id, "016x")
    got = next((s for s in trace["spans"] if s["spanID"] == sid), None)
    check(got is not None, f"span {sdk.name} {sid} missing")
    check(got["traceID"] == format(sdk.context.trace_id, "032x"), f"trace id of {sdk.name}")
    check(got["operationName"] == sdk.name, f"name {got['operationName']} != {sdk.name}")
    check(got["startTime"] == sdk.start_time // 1000, f"start of {sdk.name}")
    check(got["duration"] == (sdk.end_time - sdk.start_time) // 1000, f"duration of {sdk.name}")
    if sdk.parent is None:
        check(got["references"] == [], f"{sdk.name} should have no parent")
    else:
        ref = got["references"][0]
        check(ref["refType"] == "CHILD_OF" and ref["spanID"] == format(sdk.parent.span_id, "016x"),
              f"parent of {sdk.name}: {ref}")
    tags = {t["key"]: (t["type"], t["value"]) for t in got["tags"]}
    for k, v in sdk.attributes.items():
        check(tags.get(k) == expected_tag(v), f"attribute {k} of {sdk.name}: {tags.get(k)} != {expected_tag(v)}")
    check(tags.get("span.kind") == ("string", sdk.kind.name.lower()), f"kind of {sdk.name}: {tags.get('span.kind')}")
    check(tags.get("otel.scope.name") == ("string", sdk.instrumentation_scope.name), f"scope of {sdk.name}")
    if sdk.status.status_code == StatusCode.ERROR:
        check(tags.get("error") == ("bool", True), f"error tag of {sdk.name}")
        check(tags.get("otel.status_description") == ("string", sdk.status.description), "status description")
    else:
        check("error" not in tags, f"{sdk.name} should not be an error")
    check(len(got["logs"]) == len(sdk.events), f"events of {sdk.name}")
    for ev, log in zip(sdk.events, got["logs"]):
        check(log["timestamp"] == ev.timestamp // 1000, "event time")
        fields = {f["key"]: f["value"] for f in log["fields"]}
        check(fields.get("event") == ev.name, "event name")
        for k, v in ev.attributes.items():
            check(fields.get(k) == v, f"event attribute {k}")
    process = trace["processes"][got["processID"]]
    check(process["serviceName"] == sdk.resource.attributes["service.name"], f"service of {sdk.name}")


def run(transport, args):
    run_id = uuid.uuid4().hex[:8]
    memory = InMemorySpanExporter()
    make = (lambda: GrpcExporter(endpoint=args.grpc, insecure=True)) if transport == "grpc" else \
        (lambda: HttpExporter(endpoint=args.http.rstrip("/") + "/v1/traces"))
    names = {k: f"{k}-{transport}-{run_id}" for k in ("frontend", "backend", "postgres")}
    fe, be, db = (provider(names[k], make(), memory, run_id) for k in ("frontend", "backend", "postgres"))
    start_us = time.time_ns() // 1000
    plan = [("/a", False, False), ("/a", True, False), ("/b", False, True), ("/b", False, False),
            ("/a", True, False), ("/b", False, False)]
    for route, slow, failing in plan:
        one_request(fe, be, db, route, slow, failing)
    for p in (fe, be, db):
        check(p.force_flush(10_000), "force_flush failed")
    spans = memory.get_finished_spans()
    check(len(spans) == 24, f"expected 24 spans, SDK made {len(spans)}")
    traces = {}
    for s in spans:
        traces.setdefault(format(s.context.trace_id, "032x"), []).append(s)
    check(len(traces) == 6, "expected 6 traces")
    for tid, sdk_spans in traces.items():
        status, body = get(args.api, f"/api/traces/{tid}")
        check(status == 200, f"{transport}: trace {tid}: {status} {body}")
        trace = body["data"][0]
        check(len(trace["spans"]) == len(sdk_spans), f"{tid}: {len(trace['spans'])} spans != {len(sdk_spans)}")
        for s in sdk_spans:
            check_span(s, trace)

    def ids(pred):
        return sorted(t for t, ss in traces.items() if any(pred(s) for s in ss))

    end_us = time.time_ns() // 1000 + 1_000_000
    fe_name, be_name, db_name = names["frontend"], names["backend"], names["postgres"]

    def search(**params):
        params.setdefault("start", start_us)
        params.setdefault("end", end_us)
        q = urllib.parse.urlencode(params)
        return sorted(t["traceID"] for t in get(args.api, f"/api/traces?{q}")[1]["data"])

    # Each service's exporter sends on its own, so their spans may land in different index
    # commits (search lags the store by at most the commit interval): wait for all three.
    for svc in (fe_name, be_name, db_name):
        wait(args.api, f"/api/traces?service={svc}&start={start_us}&end={end_us}", lambda b: len(b["data"]) == 6)
    check(search(service=fe_name) == ids(lambda s: True), "search by service")
    check(search(service=fe_name, operation="GET /a") == ids(lambda s: s.name == "GET /a"), "search by operation")
    err = search(service=be_name, tags=json.dumps({"error": "true"}))
    check(err == ids(lambda s: s.status.status_code == StatusCode.ERROR) and len(err) == 1, f"search by error tag: {err}")
    check(search(service=fe_name, tags="http.status_code>=500") == err, "numeric tag search")
    slow = search(service=be_name, minDuration="250ms")
    check(slow == ids(lambda s: s.name == "POST /charge" and s.end_time - s.start_time >= 250_000_000) and len(slow) == 2,
          f"search by minDuration: {slow}")
    check(len(search(service=be_name, operation="POST /charge", maxDuration="100ms")) == 4, "search by maxDuration")
    check(len(search(service=fe_name, limit=2)) == 2, "limit")
    _, deps = get(args.api, f"/api/dependencies?endTs={end_us // 1000}&lookback=3600000")
    edges = sorted((d["parent"], d["child"], d["callCount"]) for d in deps["data"] if run_id in d["parent"])
    check(edges == sorted([(fe_name, be_name, 6), (be_name, db_name, 6)]), f"dependencies: {edges}")
    for p in (fe, be, db):
        p.shutdown()
    print(f"{transport}: 24 spans in 6 traces round-tripped exactly; searches and dependencies correct")
    for tid in sorted(traces)[:2]:
        print(f"  {args.api}/api/traces/{tid}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grpc", default="localhost:4317")
    ap.add_argument("--http", default="http://localhost:4318")
    ap.add_argument("--api", default="http://localhost:8080")
    ap.add_argument("--transport", choices=["grpc", "http", "both"], default="both")
    args = ap.parse_args()
    for t in (["grpc", "http"] if args.transport == "both" else [args.transport]):
        run(t, args)


if __name__ == "__main__":
    main()
