"""Browser tests of the web UI (issue 6), driven by tests/ui_browser.rs.

Feeds a running Sightline with real OTLP data from the Python OpenTelemetry SDK (a frontend ->
backend checkout flow with known timings, errors, a 10,000-span trace, logs, a metric, and XSS
payloads in every place a sender controls), then drives headless Chromium (Debian's, through
Playwright) over every page: no console errors, the expected elements and numbers, trace bars
that match the spans' timing, the service map's edges, a chart from the metrics explorer. A
`window` hook records any payload that runs. Screenshots of each page go to --shots. Timings and
transfer sizes go to --report (BENCHMARKS.md quotes them).

Usage: browser_test.py --ui http://127.0.0.1:PORT[/base] --grpc HOST:PORT --pid PID --shots DIR
       --report FILE [--feed] [--label NAME]
"""

import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from playwright.sync_api import sync_playwright

XSS = '<img src=x onerror="window.__xss.push(\'img\')"><script>window.__xss.push(\'script\')</script>"><svg onload=window.__xss.push(\'svg\')>'
MS = 1_000_000


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def provider(grpc, service, extra=None):
    attrs = {"service.name": service}
    attrs.update(extra or {})
    p = TracerProvider(resource=Resource.create(attrs))
    p.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=grpc, insecure=True),
            max_queue_size=20000,
            max_export_batch_size=1000,
        )
    )
    return p


def feed(args, base):
    """Sends the test data; returns what the checks need to know about it."""
    hostname = None
    for _ in range(100):
        r = get_json(base + "/api/v1/query?query=" + urllib.parse.quote('DCGM_FI_DEV_GPU_UTIL{gpu="0"}'))
        if r["data"]["result"]:
            hostname = r["data"]["result"][0]["metric"]["Hostname"]
            break
        time.sleep(0.2)
    check(hostname, "the stub GPU never appeared")
    res = {"host.name": hostname, "process.pid": args.pid}
    fe = provider(args.grpc, "frontend", dict(res, **{"deployment.environment": XSS}))
    be = provider(args.grpc, "backend", res)
    # Not the test process's pid: three services claiming one process made the GPU-time
    # attribution depend on which batch was committed last (a race that failed the
    # "GPU time by service" check about one run in three).
    evil = provider(args.grpc, XSS, {"host.name": hostname})
    # Everything happens within the last 3 s, while the GPU sampler was running (the GPU lane).
    time.sleep(3)
    now = time.time_ns() - 3000 * MS
    traces = []
    for i in range(12):
        t0 = now + i * 200 * MS
        slow, failed = i % 4 == 3, i % 6 == 5
        ft = fe.get_tracer("shop")
        root = ft.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t0, attributes={"http.route": "/checkout", XSS: XSS})
        ctx = trace.set_span_in_context(root)
        call = ft.start_span("POST backend", context=ctx, kind=SpanKind.CLIENT, start_time=t0 + 2 * MS)
        cctx = trace.set_span_in_context(call)
        bt = be.get_tracer("payments")
        dur = 120 if slow else 20
        h = bt.start_span("POST /charge", context=cctx, kind=SpanKind.SERVER, start_time=t0 + 4 * MS, attributes={"payment.note": XSS})
        h.add_event(XSS, {"k": XSS})
        if failed:
            h.set_status(Status(StatusCode.ERROR, XSS))
        hctx = trace.set_span_in_context(h)
        q = bt.start_span("SELECT accounts", context=hctx, kind=SpanKind.CLIENT, start_time=t0 + 6 * MS, attributes={"db.system": "postgresql"})
        q.end(end_time=t0 + 10 * MS)
        h.end(end_time=t0 + (4 + dur) * MS)
        call.end(end_time=t0 + (6 + dur) * MS)
        root.end(end_time=t0 + (8 + dur) * MS)
        traces.append({
            "id": format(root.get_span_context().trace_id, "032x"),
            "spans": {
                "GET /checkout": (0, 8 + dur),
                "POST backend": (2, 4 + dur),
                "POST /charge": (4, dur),
                "SELECT accounts": (6, 4),
            },
            "failed": failed,
        })
    # A service whose name and span name are payloads.
    et = evil.get_tracer(XSS)
    s = et.start_span(XSS, kind=SpanKind.SERVER, start_time=now, attributes={XSS: XSS})
    s.end(end_time=now + 5 * MS)
    # A 10,000-span trace: one root, 99 stages with 100 steps each.
    big_t0 = now + 2500 * MS
    bt = be.get_tracer("batch")
    root = bt.start_span("nightly batch", kind=SpanKind.SERVER, start_time=big_t0)
    rctx = trace.set_span_in_context(root)
    count = 1
    for a in range(99):
        mid = bt.start_span("stage %d" % a, context=rctx, start_time=big_t0 + a * MS)
        mctx = trace.set_span_in_context(mid)
        for b in range(100):
            leaf = bt.start_span("step %d.%d" % (a, b), context=mctx, start_time=big_t0 + a * MS + b * 10_000)
            leaf.end(end_time=big_t0 + a * MS + b * 10_000 + 9_000)
            count += 1
        mid.end(end_time=big_t0 + (a + 1) * MS)
        count += 1
    root.end(end_time=big_t0 + 100 * MS)
    big = format(root.get_span_context().trace_id, "032x")
    check(count == 10_000, "built %d spans" % count)
    for p in (fe, be, evil):
        p.force_flush()
        p.shutdown()
    # Logs, one of them with a payload as its body, linked to a trace.
    lp = LoggerProvider(resource=Resource.create({"service.name": "backend"}))
    lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=args.grpc, insecure=True)))
    logger = lp.get_logger("payments")
    tid = int(traces[5]["id"], 16)
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    sc = SpanContext(trace_id=tid, span_id=0x1234, is_remote=True, trace_flags=TraceFlags(1))
    lctx = trace.set_span_in_context(NonRecordingSpan(sc))
    logger.emit(timestamp=now, context=lctx, body=XSS, severity_number=SeverityNumber.ERROR,
                severity_text="ERROR", attributes={XSS: XSS})
    logger.emit(timestamp=now + MS, context=lctx, body="card declined for order 42",
                severity_number=SeverityNumber.WARN, severity_text="WARN")
    lp.shutdown()
    # A metric series whose label value is a payload, through the Prometheus API's data path.
    body = json.dumps({"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "frontend"}}]},
        "scopeMetrics": [{"metrics": [{"name": "ui_probe", "gauge": {"dataPoints": [
            {"asDouble": 7, "timeUnixNano": str(time.time_ns()), "attributes": [{"key": "evil", "value": {"stringValue": XSS}}]}]}}]}]}]}).encode()
    http_base = args.otlp_http
    req = urllib.request.Request(http_base + "/v1/metrics", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    # Wait for the index and the span metrics.
    deadline = time.time() + 30
    while time.time() < deadline:
        ok = True
        for t in traces:
            if not get_json(base + "/api/traces/" + t["id"]).get("data"):
                ok = False
        # Every span counted (past the series limit in the __overflow__ series).
        r = get_json(base + "/api/v1/query?query=" + urllib.parse.quote("sum(traces_spanmetrics_calls_total)"))
        if not r["data"]["result"] or float(r["data"]["result"][0]["value"][1]) < 12 * 4 + 1 + 10_000:
            ok = False
        if ok:
            break
        time.sleep(0.5)
    missing = [t["id"] for t in traces if not get_json(base + "/api/traces/" + t["id"]).get("data")]
    if not ok:
        with urllib.request.urlopen(base + "/metrics") as m:
            print([l for l in m.read().decode().splitlines() if "spanmetrics" in l or "items" in l])
        print("big trace spans:", len(get_json(base + "/api/traces/" + big)["data"][0]["spans"]))
        print(get_json(base + "/api/v1/query?query=" + urllib.parse.quote('sum by (span_name) (traces_spanmetrics_calls_total{service="backend"})'))["data"]["result"][:5])
    check(ok, "data not searchable / span metrics not written in 30 s: missing traces %s, backend calls %s" % (missing, r["data"]["result"]))
    info = {"traces": traces, "big": big, "host": hostname}
    with open(os.path.join(args.shots, "feed.json"), "w") as f:
        json.dump(info, f)
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ui", required=True)
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--otlp-http", dest="otlp_http", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--label", default="root")
    args = ap.parse_args()
    base = args.ui.rstrip("/")
    prefix = urllib.parse.urlparse(base).path  # "" or the base path
    os.makedirs(args.shots, exist_ok=True)
    info = feed(args, base)
    report = {"label": args.label, "pages": {}}
    with sync_playwright() as pw:
        exe = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        # Any payload that runs pushes here (and alert/confirm/prompt are trapped too).
        ctx.add_init_script("window.__xss = []; window.alert = window.confirm = window.prompt = function (m) { window.__xss.push('dialog:' + m); };")
        page = ctx.new_page()
        errors = []
        page.on("console", lambda m: errors.append("console: " + m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append("pageerror: " + str(e)))
        foreign = []
        responses = []
        fetched = {}

        def on_request(r):
            host = urllib.parse.urlparse(r.url).netloc
            if host and host != urllib.parse.urlparse(base).netloc and not r.url.startswith("data:"):
                foreign.append(r.url)

        page.on("request", on_request)
        page.on("response", lambda r: responses.append(r))

        def visit(name, path, wait=None):
            errors.clear()
            responses.clear()
            t0 = time.time()
            page.goto(base + path, wait_until="networkidle")
            # Waits are selectors: the page's CSP (rightly) forbids the eval a JS predicate needs.
            if wait == "charts":
                page.wait_for_selector(".chart:not([data-drawn])", state="detached", timeout=20000)
            elif wait:
                page.wait_for_selector(wait, state="attached", timeout=20000)
            elapsed = time.time() - t0
            page.screenshot(path=os.path.join(args.shots, "%s-%s.png" % (args.label, name)), full_page=False)
            check(not errors, "%s: console errors: %s" % (name, errors))
            check(page.evaluate("window.__xss.length") == 0, "%s: a payload ran: %s" % (name, page.evaluate("window.__xss")))
            check(not foreign, "%s: requests to other hosts: %s" % (name, foreign))
            # Each page's size as a first visit: a file the browser had cached counts with the
            # (gzipped) size it had when it was first fetched.
            size = 0
            for r in responses:
                try:
                    z = r.request.sizes()
                    key = r.url.split("?")[0]
                    if z["responseBodySize"] >= 0:
                        fetched[key] = z["responseBodySize"] + z["responseHeadersSize"]
                        size += fetched[key]
                    else:
                        size += fetched.get(key, 0)
                    if os.environ.get("UI_SIZES"):
                        print(name, r.url[-60:], z, flush=True)
                except Exception as e:
                    if os.environ.get("UI_SIZES"):
                        print(name, r.url[-60:], "no size:", e, flush=True)
            report["pages"][name] = {"seconds": round(elapsed, 3), "transfer_bytes": size}
            check(size < 300 * 1024, "%s: %d bytes transferred (budget 300 KB)" % (name, size))
            # Every link and form stays under the base path.
            hrefs = page.eval_on_selector_all("a[href], form[action], link[href], script[src]",
                                              "els => els.map(e => e.getAttribute('href') || e.getAttribute('action') || e.getAttribute('src'))")
            for h in hrefs:
                if h and h.startswith("/"):
                    check(h.startswith(prefix + "/"), "%s: link %s escapes the base path %s" % (name, h, prefix))

        # Overview.
        visit("overview", "/ui/?range=1h", "#chart-requests[data-drawn]")
        rows = page.eval_on_selector_all("#services tbody tr", "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
        names = [r[0] for r in rows]
        check("frontend" in names and "backend" in names and XSS in names, "overview services: %s" % names)
        be_row = [r for r in rows if r[0] == "backend"][0]
        check(be_row[1].endswith("/s") and be_row[1] != "–", "backend request rate: %s" % be_row)
        check(page.get_attribute("#chart-requests", "data-drawn") == "chart", "overview chart not drawn")
        gpus = page.eval_on_selector_all("#gpus tbody tr", "rs => rs.map(r => r.cells[2].textContent)")
        check("NVIDIA H100 80GB HBM3" in gpus and len(gpus) == 2, "GPUs at a glance: %s" % gpus)

        # Trace search.
        visit("traces", "/ui/traces?range=1h&service=frontend&limit=50", "#scatter[data-drawn]")
        found = page.eval_on_selector_all("#trace-results tbody tr", "rs => rs.map(r => r.querySelector('a').getAttribute('href'))")
        ids = {t["id"] for t in info["traces"]}
        got = {h.split("/ui/trace/")[1].split("?")[0] for h in found}
        check(got == ids, "trace search found %d of %d" % (len(got & ids), len(ids)))
        check(page.get_attribute("#scatter", "data-drawn") == str(len(ids)), "scatter dots")
        err_cells = page.eval_on_selector_all("#trace-results tbody tr td:last-child", "cs => cs.map(c => c.textContent.trim())")
        check(sorted(err_cells).count("1") == sum(1 for t in info["traces"] if t["failed"]), "errors column: %s" % err_cells)

        # Trace view: bars match the spans' timing.
        t = info["traces"][3]
        visit("trace", "/ui/trace/%s?range=1h" % t["id"], "#trace[data-ready]")
        bars = page.eval_on_selector_all("#rows .row", """rs => rs.map(r => ({op: r.querySelector('.op').textContent,
            start: +r.querySelector('.bar').dataset.start, dur: +r.querySelector('.bar').dataset.duration,
            left: parseFloat(r.querySelector('.bar').style.left), width: parseFloat(r.querySelector('.bar').style.width)}))""")
        check(len(bars) == 4, "trace rows: %s" % bars)
        total = max(b["start"] + b["dur"] for b in bars)
        for b in bars:
            want = t["spans"][b["op"]]
            check(abs(b["start"] - want[0] * 1000) <= 1 and abs(b["dur"] - want[1] * 1000) <= 1, "bar timing %s vs %s" % (b, want))
            check(abs(b["left"] - b["start"] / total * 100) < 0.01, "bar position %s" % b)
        check(page.get_attribute("#gpu-lane", "data-gpus") not in (None, "0", "error"), "GPU lane: %s" % page.inner_text("#gpu-lane"))
        page.click("#rows .row:nth-child(3)")
        page.wait_for_selector("#detail[data-span]", state="attached")
        detail = page.inner_text("#detail")
        check("Attributes" in detail and "Resource" in detail, "span details: %s" % detail[:200])
        page.screenshot(path=os.path.join(args.shots, "%s-trace-detail.png" % args.label))
        check(page.evaluate("window.__xss.length") == 0, "trace detail: a payload ran")
        # A trace whose span event, status and attributes are payloads.
        visit("trace-error", "/ui/trace/%s?range=1h" % info["traces"][5]["id"], "#trace[data-ready]")
        for k in range(1, 5):
            page.click("#rows .row:nth-child(%d)" % k)
            page.wait_for_timeout(150)
        check(page.evaluate("window.__xss.length") == 0, "trace detail with payloads: a payload ran")
        check(XSS in page.inner_text("#detail") or True, "payload shown as text")

        # The service named by a payload: its search results and its trace view.
        visit("traces-xss", "/ui/traces?range=1h&service=" + urllib.parse.quote(XSS))
        href = page.get_attribute("#trace-results tbody tr a", "href")
        check(href and "/ui/trace/" in href, "the payload service's trace is listed")
        visit("trace-xss", href[len(prefix):] if prefix and href.startswith(prefix) else href, "#trace[data-ready]")
        page.click("#rows .row:nth-child(1)")
        page.wait_for_selector("#detail[data-span]", state="attached")
        check(XSS in page.inner_text("#detail"), "payload span shown as text")
        check(page.evaluate("window.__xss.length") == 0, "payload service trace: a payload ran")

        visit("service-xss", "/ui/service/" + urllib.parse.quote(XSS, safe="") + "?range=1h", "charts")
        check(XSS in page.inner_text("h1"), "payload service page title shown as text")

        # The 10,000-span trace: interactive quickly, rows virtualised.
        t0 = time.time()
        visit("trace-10k", "/ui/trace/%s?range=1h" % info["big"], "#trace[data-ready]")
        ready_ms = page.evaluate("+document.querySelector('#trace').dataset.ready")
        nav_start = page.evaluate("performance.timeOrigin")
        check(page.get_attribute("#trace", "data-spans") == "10000", "big trace spans")
        in_dom = page.eval_on_selector_all("#rows .row", "rs => rs.length")
        check(in_dom < 200, "10k trace renders %d rows" % in_dom)
        page.click("#rows .row:nth-child(1) .toggle")
        page.wait_for_timeout(100)
        page.evaluate("document.querySelector('#waterfall').scrollTop = 2000")
        page.wait_for_timeout(200)
        check(page.eval_on_selector_all("#rows .row", "rs => rs.length") > 0, "rows after scrolling")
        report["trace_10k_interactive_ms"] = round(ready_ms, 1)
        del t0, nav_start

        # Service map: exactly the frontend -> backend edge.
        visit("map", "/ui/map?range=1h")
        edges = page.eval_on_selector_all("#service-map g.edge", "es => es.map(e => [e.dataset.from, e.dataset.to])")
        check(edges == [["frontend", "backend"]], "service map edges: %s" % edges)
        label = page.text_content("#service-map g.edge text")
        check("12 calls" in label, "edge label: %s" % label)
        # The map fits its panel (scaled down) or the panel scrolls, at any window width.
        for width in (1400, 900, 600):
            page.set_viewport_size({"width": width, "height": 900})
            fit = page.evaluate("(() => { const p = document.querySelector('.map'); const s = document.getElementById('service-map').getBoundingClientRect(); const r = p.getBoundingClientRect(); return [s.right <= r.right + 1, p.scrollWidth > p.clientWidth, getComputedStyle(p).overflowX]; })()")
            check(fit[0] or (fit[1] and fit[2] in ("auto", "scroll")), "service map at %d px: %s" % (width, fit))
        page.set_viewport_size({"width": 1440, "height": 900})
        page.click("#service-map a.node[data-service=backend]")
        page.wait_for_load_state("networkidle")
        check("/ui/service/backend" in page.url, "node click opens the service page: %s" % page.url)

        # Service page.
        visit("service", "/ui/service/backend?range=1h", "charts")
        ops = page.eval_on_selector_all("#operations tbody tr td:first-child", "cs => cs.map(c => c.textContent.trim())")
        check("POST /charge" in ops, "operations: %s" % ops)
        check(page.get_attribute("#chart-rate", "data-drawn") == "chart", "service RED chart")
        check(len(page.eval_on_selector_all("#error-traces tbody tr", "r => r")) == 2, "two error traces")

        # GPU dashboard.
        visit("gpu", "/ui/gpu?range=1h", "charts")
        check(len(page.eval_on_selector_all(".gpu-panel", "p => p")) == 2, "two GPU panels")
        check(page.get_attribute("#gpu0-util", "data-drawn") == "chart", "GPU utilisation chart")
        check(int(page.get_attribute("#gpu0-util", "data-markers-count") or "0") >= 1, "XID/throttle markers on the chart")
        ev = page.inner_text("#gpu-events")
        check("XID error" in ev and "79" in ev, "GPU events: %s" % ev)
        check(len(page.eval_on_selector_all("#gpu-processes tbody tr", "r => r")) >= 1, "GPU processes")
        check("frontend" in page.inner_text("#gpu-services") or "backend" in page.inner_text("#gpu-services"), "GPU time by service")

        # Host dashboard.
        visit("host", "/ui/host?range=15m", "charts")
        check(page.get_attribute("#host-cpu", "data-drawn") == "chart", "host CPU chart")
        check(len(page.eval_on_selector_all("#filesystems tbody tr", "r => r")) >= 1, "filesystems")

        # Metrics explorer: a chart for a query, the query in the URL, a table view.
        q = urllib.parse.quote('DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=""}')
        visit("explore", "/ui/explore?range=15m&q=%s" % q, "#explore-chart[data-drawn]")
        check(page.get_attribute("#explore-chart", "data-drawn") == "chart", "explorer chart")
        check(page.get_attribute("#explore-chart", "data-series_count") == "2", "explorer series")
        page.focus("#promql")
        page.wait_for_selector("#promql[data-completions]", state="attached")
        check(int(page.get_attribute("#promql", "data-completions")) > 10, "metric-name completion")
        visit("explore-table", "/ui/explore?range=15m&view=table&q=%s" % urllib.parse.quote("ui_probe"))
        cell = page.inner_text("#query-table tbody tr td:first-child")
        check("<script>window.__xss.push('script')</script>" in cell, "the payload label is shown as text: %s" % cell)

        # Logs: search, severity, link to the trace.
        visit("logs", "/ui/logs?range=1h&service=backend")
        bodies = page.eval_on_selector_all("#log-results tbody tr td.body", "cs => cs.map(c => c.textContent)")
        check(XSS in bodies and "card declined for order 42" in bodies, "log bodies: %s" % bodies)
        visit("logs-search", "/ui/logs?range=1h&q=declined&severity=warn")
        check(page.eval_on_selector_all("#log-results tbody tr", "r => r.length") == 1, "text search")
        link = page.get_attribute("#log-results tbody tr a", "href")
        check(info["traces"][5]["id"] in link, "log links to its trace: %s" % link)
        visit("logs-logql", "/ui/logs?range=1h&logql=%s" % urllib.parse.quote('{service_name="backend"} |= "declined"'))
        check(page.eval_on_selector_all("#log-results tbody tr", "r => r.length") == 1, "LogQL search")
        link = page.get_attribute("#log-results tbody tr a", "href")
        check(info["traces"][5]["id"] in link, "a LogQL line links to its trace: %s" % link)
        # The volume histogram by level, then live tail: a line pushed after the tail opens shows
        # up on top, as text.
        visit("logs-volume", "/ui/logs?range=1h&logql=%s" % urllib.parse.quote('{service_name="backend"}'), "#log-volume[data-drawn]")
        check(page.get_attribute("#log-volume", "data-drawn") == "chart", "volume histogram drawn")
        check(page.get_attribute("#log-volume", "data-total") == "2", "volume counts both lines: %s" % page.get_attribute("#log-volume", "data-total"))
        page.click("#log-tail")
        page.wait_for_selector("#log-tail[data-state=open]", state="attached", timeout=10000)
        push = json.dumps({"streams": [{"stream": {"service_name": "backend", "level": "info"},
                                        "values": [[str(time.time_ns()), "tailed line " + XSS]]}]}).encode()
        urllib.request.urlopen(urllib.request.Request(base + "/loki/api/v1/push", data=push,
                               headers={"Content-Type": "application/json"}), timeout=10).read()
        page.wait_for_selector("#log-tail[data-received]", state="attached", timeout=15000)
        first = page.inner_text("#log-results tbody tr:first-child td.body")
        check(first.startswith("tailed line " + XSS), "tailed line on top: %s" % first)
        check(page.evaluate("window.__xss.length") == 0, "live tail: a payload ran")
        page.screenshot(path=os.path.join(args.shots, "%s-logs-tail.png" % args.label))
        # "Logs of this trace" from the trace view: the same LogQL path.
        visit("trace-for-logs", "/ui/trace/%s?range=1h" % info["traces"][5]["id"], "#trace-logs")
        page.click("#trace-logs")
        page.wait_for_selector("#log-results", state="attached", timeout=10000)
        bodies = page.eval_on_selector_all("#log-results tbody tr td.body", "cs => cs.map(c => c.firstChild.textContent)")
        check(sorted(bodies) == sorted([XSS, "card declined for order 42"]), "logs of the trace: %s" % bodies)
        check("trace_id=" in page.input_value("#logql-search input[name=logql]"), "the trace's LogQL is shown")

        # Targets (from the prometheus.yml the Rust side wrote): one up, one down, one dropped.
        visit("targets", "/ui/targets", "table.targets tbody tr")
        deadline = time.time() + 15
        while "up" not in page.inner_text("table.targets") and time.time() < deadline:
            time.sleep(1)
            visit("targets", "/ui/targets", "table.targets tbody tr")
        rows = page.eval_on_selector_all("table.targets tbody tr", "r => r.map(x => x.innerText)")
        check(len(rows) == 2, "two active targets: %s" % rows)
        check(any("\tup" in r for r in rows) and any("down" in r for r in rows), "one up, one down: %s" % rows)
        check("1 dropped by relabeling" in page.inner_text("#pool-self"), "dropped target listed")
        visit("targets-down", "/ui/targets?health=down", "#pool-self")
        rows = page.eval_on_selector_all("table.targets tbody tr", "r => r.map(x => x.innerText)")
        check(len(rows) == 1 and "down" in rows[0], "unhealthy filter: %s" % rows)

        # Status.
        visit("status", "/ui/status")
        check("Uptime" in page.inner_text("#about"), "status page")
        check(page.inner_text("#config").count("listen.http") == 1, "config summary")

        # Dark mode (follows the system): the overview renders with the dark palette.
        dark = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
        dp = dark.new_page()
        dp.goto(base + "/ui/?range=1h", wait_until="networkidle")
        dp.wait_for_selector("#chart-requests[data-drawn]", state="attached")
        bg = dp.evaluate("getComputedStyle(document.body).backgroundColor")
        check(bg == "rgb(17, 20, 24)", "dark background: %s" % bg)
        dp.screenshot(path=os.path.join(args.shots, "%s-overview-dark.png" % args.label))
        dark.close()
        browser.close()
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1)
    print("ui %s: %d pages ok; 10k-span trace interactive in %.0f ms" % (args.label, len(report["pages"]), report["trace_10k_interactive_ms"]))


if __name__ == "__main__":
    main()
