"""Grafana dashboards in a real browser (issue 23), driven by tests/dashboards_browser.rs.

Sightline holds data from its own samplers (host; GPUs on the stub NVML library) and from a
real node-exporter it scrapes; a real Prometheus 2.42 scrapes the same exporter, and Sightline's
GPU series through /federate. Headless Chromium (Debian's, through Playwright):

- imports Node Exporter Full through the UI (a file chosen in the import form), then deletes it
  and drops it into the provisioning folder; imports a grafana.com-style export of the DCGM
  dashboard (`__inputs`, `${DS_PROMETHEUS}`) pasted in; the DCGM dashboard as published is
  provisioned from a folder;
- opens each with every row expanded and waits for every panel: none may show an error or be
  unsupported; every panel whose queries have data in Prometheus for the same expressions and
  range must show data; every chart spans its panel's time range and draws a value in it;
- checks the shared crosshair (Node Exporter Full's graphTooltip 1) and its absence (DCGM's 0);
- checks each variable's options against Sightline's /api/v1/label/<name>/values answers (what
  Grafana would list), with "All" first where the variable includes it;
- bad input: a 20 MB dashboard and malformed JSON get clear errors; 500 panels render; a text
  panel's <script> and javascript: link do not run; a variable of 100,000 values is bounded;
- writes full-page screenshots and a timing report to --shots.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

FAILS = []


def fail(msg):
    print("FAIL: " + msg, flush=True)
    FAILS.append(msg)


def get_text(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read().decode()


def get_json(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def has_data(result):
    for s in result:
        vals = s.get("values") or ([s["value"]] if "value" in s else [])
        if any(v[1] not in ("NaN",) for v in vals):
            return True
    return False


def prom_has_data(prom, t):
    q = {"query": t["expr"]}
    if t["instant"]:
        q["time"] = str(t["time"] / 1000)
        path = "/api/v1/query"
    else:
        q.update(start=str(t["start"] / 1000), end=str(t["end"] / 1000), step=str(t["step"] / 1000))
        path = "/api/v1/query_range"
    try:
        j = get_json(prom + path + "?" + urllib.parse.urlencode(q))
    except Exception as e:  # Prometheus refusing a query is not Sightline's failure.
        return False, str(e)
    d = j["data"]
    if d["resultType"] == "scalar":
        return True, ""
    return has_data(d["result"]), ""


def wait_until(page, expr, timeout=120):
    """Polls `expr` in the page (wait_for_function would eval, which the CSP forbids)."""
    deadline = time.time() + timeout
    while not page.evaluate(expr):
        if time.time() > deadline:
            raise TimeoutError(f"{expr} still false after {timeout} s")
        page.wait_for_timeout(50)


def open_all(page, url):
    t0 = time.time()
    page.goto(url)
    for b in page.query_selector_all(".dash-section.collapsed .dash-row-toggle"):
        b.click()
    height = page.evaluate("document.body.scrollHeight")
    for y in range(0, height + 1200, 700):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(20)
    try:
        wait_until(page, "window.__dashPending && window.__dashPending() === 0", 60)
    except TimeoutError:
        stuck = page.evaluate("Array.from(document.querySelectorAll('.dpanel[data-state=idle], .dpanel[data-state=loading]')).map(p => [p.querySelector('.dpanel-title').textContent, p.dataset.state, p.getBoundingClientRect().top, window.scrollY])")
        fail(f"{url}: panels never finished: {stuck}")
    took = time.time() - t0
    page.evaluate("window.scrollTo(0, 0)")
    panels = page.evaluate(
        """Array.from(document.querySelectorAll('.dpanel')).map(p => ({
            title: p.querySelector('.dpanel-title').textContent,
            state: p.dataset.state,
            msg: (p.querySelector('.dpanel-msg') || {}).textContent || '',
            spec: JSON.parse(p.dataset.spec)}))"""
    )
    return panels, took


def check_panels(name, panels, prom):
    checked = with_prom = 0
    for p in panels:
        if p["state"] in ("error", "unsupported", "idle", "loading"):
            fail(f"{name}: panel {p['title']!r} is {p['state']}: {p['msg']}")
            continue
        if p["state"] == "text":
            continue
        checked += 1
        prom_data = False
        for t in p["spec"]["targets"]:
            ok, _ = prom_has_data(prom, t)
            prom_data = prom_data or ok
        if prom_data:
            with_prom += 1
            if p["state"] != "data":
                exprs = [t["expr"] for t in p["spec"]["targets"]]
                fail(f"{name}: panel {p['title']!r} shows {p['state']} but Prometheus has data for {exprs}")
    print(f"{name}: {len(panels)} panels, {checked} with queries, {with_prom} with data in Prometheus, "
          f"{sum(p['state'] == 'data' for p in panels)} drawn with data", flush=True)
    return with_prom


def check_charts(page, name):
    """Every time series drawn spans its panel's time range (as Grafana's x axis does), has a
    y axis that is not empty, draws at least one value inside it, and with its legend fills its
    panel's height. Returns how many
    charts were checked."""
    rows = page.evaluate("""Array.from(document.querySelectorAll('.dpanel[data-state=data]'))
        .filter(p => JSON.parse(p.dataset.spec).type === 'timeseries').map(p => ({
        title: p.querySelector('.dpanel-title').textContent,
        xrange: (p.dataset.xrange || 'NaN,NaN').split(',').map(Number),
        visible: +p.dataset.visible,
        yrange: (p.dataset.yrange || 'NaN,NaN').split(',').map(Number),
        fill: (() => { const parts = ['.uplot', '.dlegend'].map(s => p.querySelector(s)).filter(e => e).map(e => e.getBoundingClientRect());
            return parts.length ? (Math.max(...parts.map(r => r.bottom)) - Math.min(...parts.map(r => r.top))) / p.querySelector('.dpanel-body').clientHeight : 0; })(),
        range: JSON.parse(p.dataset.spec).range}))""")
    for r in rows:
        lo, hi = r["xrange"]
        want = [v / 1000 for v in r["range"]]
        if not (abs(lo - want[0]) <= 1 and abs(hi - want[1]) <= 1):
            fail(f"{name}: chart {r['title']!r} spans {r['xrange']}, not its time range {want}")
        if not r["yrange"][1] > r["yrange"][0]:
            fail(f"{name}: chart {r['title']!r} has an empty y axis {r['yrange']}")
        if r["visible"] < 1:
            fail(f"{name}: chart {r['title']!r} draws no value inside its time range")
        if not 0.85 <= r["fill"] <= 1.01:
            fail(f"{name}: chart {r['title']!r} with its legend fills {r['fill']:.2f} of its panel's height")
    return len(rows)


def check_crosshair(page, name, shared):
    """Hovering one chart: with a shared crosshair (graphTooltip 1 or 2) every other chart in
    view shows the cursor too; without, only the hovered one."""
    overs = page.query_selector_all(".dpanel[data-state=data] .u-over")
    if len(overs) < 2:
        fail(f"{name}: fewer than two charts to check the crosshair on")
        return
    overs[0].scroll_into_view_if_needed()
    box = overs[0].bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(100)
    shown = page.evaluate("document.querySelectorAll('.dpanel .u-cursor-x:not(.u-off)').length")
    tips = page.evaluate("""Array.from(document.querySelectorAll('.dpanel .dtip:not([hidden])')).map(t => ({
        time: (t.querySelector('.dtip-time') || {}).textContent || '', rows: t.querySelectorAll('.dtip-row').length}))""")
    page.mouse.move(0, 0)
    if len(tips) != 1 or not tips[0]["time"] or tips[0]["rows"] < 1:
        fail(f"{name}: hovering one chart shows tooltips {tips}, want one with a time and a value")
    if shared and shown < 2:
        fail(f"{name}: shared crosshair shows the cursor on {shown} chart(s)")
    if not shared and shown != 1:
        fail(f"{name}: crosshair not shared, yet the cursor shows on {shown} charts")


def var_options(page, var):
    return page.evaluate(
        f"""Array.from(document.querySelectorAll('select[data-var="{var}"] option')).map(o => o.value)"""
    )


def check_var(page, ui, var, label, match, span, include_all):
    q = {"start": str(span[0] / 1000), "end": str(span[1] / 1000)}
    if match:
        q["match[]"] = match
    want = get_json(ui + f"/api/v1/label/{label}/values?" + urllib.parse.urlencode(q))["data"]
    want = sorted(want)
    if include_all:
        want = ["$__all"] + want
    got = var_options(page, var)
    if got != want:
        fail(f"variable {var}: options {got} but Sightline's API answers {want}")
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ui", required=True)
    ap.add_argument("--prom", required=True)
    ap.add_argument("--exporter", required=True, help="the scraped node-exporter's instance label")
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--provision", required=True, help="the folder Sightline provisions dashboards from")
    args = ap.parse_args()
    ui, prom = args.ui.rstrip("/"), args.prom.rstrip("/")
    nef_path = os.path.join(args.fixtures, "node-exporter-full.json")
    dcgm = json.load(open(os.path.join(args.fixtures, "dcgm-exporter-dashboard.json")))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.add_init_script("window.__xss = []")
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # --- import through the UI: a file, and a grafana.com export pasted in
        page.goto(ui + "/ui/dashboards")
        page.set_input_files("#dash-file", nef_path)
        wait_until(page, "document.getElementById('dash-json').value.length > 100000", 30)
        page.click("#dash-import-submit")
        page.wait_for_selector("#dash-imported")
        export = json.loads(json.dumps(dcgm).replace('"$datasource"', '"${DS_PROMETHEUS}"'))
        export["__inputs"] = [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}]
        export["templating"]["list"] = [v for v in export["templating"]["list"] if v["type"] != "datasource"]
        export["uid"] = "dcgm-export"
        export["title"] = "DCGM (grafana.com export)"
        page.fill("#dash-json", json.dumps(export))
        page.click("#dash-import-submit")
        page.wait_for_selector("#dash-imported")
        listed = page.evaluate("Array.from(document.querySelectorAll('#dash-list tbody tr td:first-child')).map(t => t.textContent)")
        for want in ("Node Exporter Full", "NVIDIA DCGM Exporter Dashboard", "DCGM (grafana.com export)"):
            if want not in listed:
                fail(f"dashboard list lacks {want!r}: {listed}")

        # --- Node Exporter Full against the scraped exporter
        host = get_json(ui + "/api/v1/query?" + urllib.parse.urlencode({"query": f'node_uname_info{{instance="{args.exporter}"}}'}))["data"]["result"]
        if not host:
            fail("no node_uname_info from the scraped exporter")
            nodename = ""
        else:
            nodename = host[0]["metric"]["nodename"]
        qs = urllib.parse.urlencode({"var-job": "node", "var-nodename": nodename, "var-node": args.exporter, "from": "now-5m", "to": "now"})
        page.goto(ui + "/ui/dashboards/rYdddlPWk?" + qs)
        span = (int(page.get_attribute("#dash", "data-from")), int(page.get_attribute("#dash", "data-to")))
        check_var(page, ui, "job", "job", "node_uname_info", span, False)
        check_var(page, ui, "nodename", "nodename", 'node_uname_info{job="node"}', span, False)
        inst = check_var(page, ui, "node", "instance", f'node_uname_info{{job="node", nodename="{nodename}"}}', span, False)
        if args.exporter not in inst:
            fail(f"the exporter {args.exporter} is not among the instances {inst}")
        panels, took = open_all(page, ui + "/ui/dashboards/rYdddlPWk?" + qs)
        if len(panels) < 100:
            fail(f"Node Exporter Full drew {len(panels)} panels")
        nef_with = check_panels("Node Exporter Full", panels, prom)
        if check_charts(page, "Node Exporter Full") < 50:
            fail("Node Exporter Full: fewer than 50 time series charts drawn")
        check_crosshair(page, "Node Exporter Full", True)
        # A table legend with the panel's calculations (Min, Mean, Max), in the panel's unit.
        legend = page.evaluate("""(() => { const p = Array.from(document.querySelectorAll('.dpanel')).find(p => p.querySelector('.dpanel-title').textContent === 'Network Traffic');
            if (!p) return null;
            return {head: Array.from(p.querySelectorAll('.dlegend thead th')).map(t => t.textContent),
                    rows: Array.from(p.querySelectorAll('.dlegend tbody tr')).map(r => Array.from(r.children).map(c => c.textContent))}; })()""")
        if not legend or legend["head"][1:] != ["Min", "Mean", "Max"] or not legend["rows"] \
                or any(c == "-" or not c.endswith("b/s") for r in legend["rows"] for c in r[1:]):
            fail(f"Network Traffic legend: {legend}")
        if nef_with < 60:
            fail(f"only {nef_with} Node Exporter Full panels have data in Prometheus: the comparison proves little")
        page.screenshot(path=os.path.join(args.shots, "dashboard-node-exporter-full.png"), full_page=True)
        print(f"Node Exporter Full, all rows expanded: {took:.2f} s to the last panel", flush=True)

        # --- Node Exporter Full through provisioning too: the upload deleted in the UI, the
        # published file dropped into the watched folder, the same checks again.
        page.goto(ui + "/ui/dashboards")
        page.click("#dash-list tr:has(a:text-is('Node Exporter Full')) button")
        page.wait_for_load_state()
        if "Node Exporter Full" in page.text_content("#dash-list"):
            fail("deleting the uploaded Node Exporter Full left it listed")
        shutil.copy(nef_path, os.path.join(args.provision, "node-exporter-full.json"))
        deadline = time.time() + 30
        while "Node Exporter Full" not in get_text(ui + "/ui/dashboards"):
            if time.time() > deadline:
                fail("Node Exporter Full dropped into the provisioning folder never appeared")
                break
            time.sleep(0.5)
        panels, _ = open_all(page, ui + "/ui/dashboards/rYdddlPWk?" + qs)
        if check_panels("Node Exporter Full (provisioned)", panels, prom) != nef_with:
            fail("Node Exporter Full provisioned shows data in other panels than uploaded")
        check_charts(page, "Node Exporter Full (provisioned)")

        # --- DCGM, provisioned and imported as an export
        for uid, label in (("Oxed_c6Wz", "DCGM (provisioned)"), ("dcgm-export", "DCGM (export)")):
            page.goto(ui + f"/ui/dashboards/{uid}?from=now-5m&to=now")
            span = (int(page.get_attribute("#dash", "data-from")), int(page.get_attribute("#dash", "data-to")))
            check_var(page, ui, "instance", "instance", "DCGM_FI_DEV_GPU_TEMP", span, True)
            gpus = check_var(page, ui, "gpu", "gpu", "DCGM_FI_DEV_GPU_TEMP", span, True)
            if len(gpus) < 2:
                fail(f"{label}: no GPUs listed")
            panels, _ = open_all(page, ui + f"/ui/dashboards/{uid}?from=now-5m&to=now")
            with_prom = check_panels(label, panels, prom)
            if check_charts(page, label) < 4:
                fail(f"{label}: fewer than 4 time series charts drawn")
            check_crosshair(page, label, False)
            # The legacy graphs' legend: a table on the right with max, avg and current, every
            # series named and its name readable (not squeezed to nothing).
            leg = page.evaluate("""Array.from(document.querySelectorAll('.dpanel-body.legend-right .dlegend.table')).map(l => ({
                head: Array.from(l.querySelectorAll('thead th')).map(t => t.textContent),
                names: Array.from(l.querySelectorAll('tbody td.name')).map(t => [t.textContent, t.getBoundingClientRect().width])}))""")
            if len(leg) < 5 or any(l["head"][1:] != ["Mean", "Last *", "Max"] or not l["names"]
                                   or any(not n.startswith("GPU ") or w < 40 for n, w in l["names"]) for l in leg):
                fail(f"{label}: right-hand table legends {leg}")
            print(f"{label}: without data in Prometheus: {[p['title'] for p in panels if p['state'] != 'data']}", flush=True)
            if with_prom < len(panels) - 1:
                fail(f"{label}: only {with_prom} of {len(panels)} panels have data in Prometheus")
            if uid == "Oxed_c6Wz":
                page.screenshot(path=os.path.join(args.shots, "dashboard-dcgm.png"), full_page=True)
        # One GPU chosen in the URL narrows every query to it.
        page.goto(ui + "/ui/dashboards/Oxed_c6Wz?var-gpu=1&from=now-5m")
        sel = page.evaluate("""Array.from(document.querySelectorAll('select[data-var="gpu"] option')).filter(o => o.selected).map(o => o.value)""")
        if sel != ["1"]:
            fail(f"var-gpu=1 in the URL selected {sel}")
        exprs = page.evaluate("Array.from(document.querySelectorAll('.dpanel')).map(p => JSON.parse(p.dataset.spec).targets.map(t => t.expr)).flat()")
        if not exprs or not all('gpu=~"1"' in e for e in exprs):
            fail(f"queries do not select gpu 1: {exprs[:3]}")


        # --- every panel type, legacy panels, repeats, a collapsed row, an unanswerable source
        kitchen = {"uid": "kitchen", "title": "Every panel type", "schemaVersion": 39,
            "templating": {"list": [{"name": "mode", "type": "custom", "query": "idle,user,system", "multi": True,
                                     "current": {"value": ["idle", "user"]}}]},
            "panels": [
                {"id": 1, "type": "timeseries", "title": "stacked percent", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 6},
                 "fieldConfig": {"defaults": {"unit": "percent", "custom": {"stacking": {"mode": "percent"}, "fillOpacity": 30}}, "overrides": []},
                 "options": {"legend": {"showLegend": True, "displayMode": "list", "placement": "right", "calcs": ["lastNotNull"]}},
                 "targets": [{"expr": 'sum by (mode) (rate(node_cpu_seconds_total{job="node"}[1m]))', "legendFormat": "{{mode}}", "refId": "A"}]},
                {"id": 2, "type": "graph", "title": "legacy graph", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 6},
                 "yaxes": [{"format": "bytes"}, {"format": "short"}], "stack": True, "fill": 2,
                 "seriesOverrides": [{"alias": "/Tx/", "transform": "negative-Y"}],
                 "targets": [{"expr": 'sum(rate(node_network_receive_bytes_total{job="node"}[1m]))', "legendFormat": "Rx", "refId": "A"},
                             {"expr": 'sum(rate(node_network_transmit_bytes_total{job="node"}[1m]))', "legendFormat": "Tx", "refId": "B"}]},
                {"id": 3, "type": "singlestat", "title": "legacy singlestat", "gridPos": {"x": 0, "y": 6, "w": 4, "h": 4},
                 "format": "percentunit", "valueName": "current", "thresholds": "0.5,0.8", "colorValue": True,
                 "targets": [{"expr": "vector(0.9)", "refId": "A"}]},
                {"id": 4, "type": "bargauge", "title": "bar gauge", "gridPos": {"x": 4, "y": 6, "w": 8, "h": 4},
                 "fieldConfig": {"defaults": {"unit": "bytes", "min": 0}, "overrides": []},
                 "targets": [{"expr": 'node_filesystem_size_bytes{job="node", fstype!~"tmpfs|overlay"}', "legendFormat": "{{mountpoint}}", "refId": "A", "instant": True}]},
                {"id": 5, "type": "table", "title": "table", "gridPos": {"x": 12, "y": 6, "w": 12, "h": 4},
                 "targets": [{"expr": "node_uname_info", "format": "table", "instant": True, "refId": "A"}]},
                {"id": 6, "type": "heatmap", "title": "heatmap", "gridPos": {"x": 0, "y": 10, "w": 12, "h": 5},
                 "targets": [{"expr": 'label_replace(vector(1), "le", "0.1", "", "") or label_replace(vector(3), "le", "1", "", "") or label_replace(vector(4), "le", "+Inf", "", "")', "format": "heatmap", "refId": "A"}]},
                {"id": 7, "type": "piechart", "title": "pie", "gridPos": {"x": 12, "y": 10, "w": 12, "h": 5},
                 "targets": [{"expr": 'sum by (mode) (node_cpu_seconds_total{job="node", mode=~"$mode"})', "legendFormat": "{{mode}}", "refId": "A", "instant": True}]},
                {"id": 8, "type": "stat", "title": "cpu $mode", "repeat": "mode", "repeatDirection": "h", "gridPos": {"x": 0, "y": 15, "w": 6, "h": 3},
                 "targets": [{"expr": 'sum(node_cpu_seconds_total{job="node", mode="$mode"})', "refId": "A", "instant": True}]},
                {"id": 9, "type": "timeseries", "title": "from Loki", "datasource": {"type": "loki", "uid": "logs"}, "gridPos": {"x": 0, "y": 18, "w": 12, "h": 4},
                 "targets": [{"expr": 'rate({job="x"}[1m])', "refId": "A"}]},
                {"id": 10, "type": "row", "title": "folded", "collapsed": True, "gridPos": {"x": 0, "y": 22, "w": 24, "h": 1},
                 "panels": [{"id": 11, "type": "gauge", "title": "inside a folded row", "gridPos": {"x": 0, "y": 23, "w": 6, "h": 5},
                             "targets": [{"expr": "vector(42)", "refId": "A"}]}]},
                # Transformations: kube-prometheus's disk space table (queries without refIds,
                # as that dashboard has them), a legacy Angular table with styles, and a chart
                # of each row's mean.
                {"id": 12, "type": "table", "title": "disk space", "gridPos": {"x": 0, "y": 28, "w": 12, "h": 6},
                 "targets": [{"expr": 'max by (mountpoint) (node_filesystem_size_bytes{job="node", fstype!=""})', "format": "table", "instant": True},
                             {"expr": 'max by (mountpoint) (node_filesystem_avail_bytes{job="node", fstype!=""})', "format": "table", "instant": True}],
                 "fieldConfig": {"defaults": {"unit": "bytes", "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.9}]}},
                                 "overrides": [{"matcher": {"id": "byName", "options": "Used, %"}, "properties": [
                                     {"id": "unit", "value": "percentunit"}, {"id": "custom.cellOptions", "value": {"type": "gauge"}},
                                     {"id": "min", "value": 0}, {"id": "max", "value": 1}]}]},
                 "transformations": [
                     {"id": "groupBy", "options": {"fields": {"Value #A": {"aggregations": ["lastNotNull"], "operation": "aggregate"},
                                                              "Value #B": {"aggregations": ["lastNotNull"], "operation": "aggregate"},
                                                              "mountpoint": {"aggregations": [], "operation": "groupby"}}}},
                     {"id": "merge", "options": {}},
                     {"id": "calculateField", "options": {"alias": "Used", "mode": "binary", "binary": {"left": "Value #A (lastNotNull)", "operator": "-", "right": "Value #B (lastNotNull)"}}},
                     {"id": "calculateField", "options": {"alias": "Used, %", "mode": "binary", "binary": {"left": "Used", "operator": "/", "right": "Value #A (lastNotNull)"}}},
                     {"id": "organize", "options": {"excludeByName": {}, "indexByName": {}, "renameByName": {"Value #A (lastNotNull)": "Size", "Value #B (lastNotNull)": "Available", "mountpoint": "Mounted on"}}},
                     {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "Mounted on"}]}}]},
                {"id": 13, "type": "table-old", "title": "old table", "gridPos": {"x": 12, "y": 28, "w": 12, "h": 6}, "transform": "table",
                 "styles": [{"pattern": "Time", "type": "hidden"}, {"pattern": "Value", "type": "number", "unit": "bytes", "alias": "Size", "decimals": 1}],
                 "targets": [{"expr": 'max by (mountpoint) (node_filesystem_size_bytes{job="node", fstype!=""})', "format": "table", "instant": True, "refId": "A"}]},
                {"id": 14, "type": "timeseries", "title": "mean of rows", "gridPos": {"x": 0, "y": 34, "w": 12, "h": 6},
                 "targets": [{"expr": 'node_load1{job="node"}', "legendFormat": "1m", "refId": "A"}, {"expr": 'node_load5{job="node"}', "legendFormat": "5m", "refId": "B"}],
                 "transformations": [{"id": "calculateField", "options": {"alias": "load mean", "mode": "reduceRow", "reduce": {"reducer": "mean"}, "replaceFields": True}}]},
            ]}
        legacy = {"uid": "legacy", "title": "Grafana 4 rows", "schemaVersion": 14, "rows": [
            {"title": "first", "height": "200px", "panels": [
                {"id": 1, "type": "graph", "span": 6, "title": "load", "targets": [{"expr": 'node_load1{job="node"}', "refId": "A"}]},
                {"id": 2, "type": "singlestat", "span": 6, "title": "up", "targets": [{"expr": "vector(1)", "refId": "A"}]}]}]}
        for d in (kitchen, legacy):
            page.goto(ui + "/ui/dashboards")
            page.fill("#dash-json", json.dumps(d))
            page.click("#dash-import-submit")
            page.wait_for_selector("#dash-imported")
        panels, _ = open_all(page, ui + "/ui/dashboards/kitchen?from=now-5m")
        states = {p["title"]: p["state"] for p in panels}
        want = {"stacked percent": "data", "legacy graph": "data", "legacy singlestat": "data", "bar gauge": "data",
                "table": "data", "heatmap": "data", "pie": "data", "cpu idle": "data", "cpu user": "data",
                "from Loki": "unsupported", "inside a folded row": "data", "disk space": "data", "old table": "data",
                "mean of rows": "data"}
        for t, st in want.items():
            if states.get(t) != st:
                fail(f"kitchen: panel {t!r} is {states.get(t)}, want {st}")
        if "cpu system" in states:
            fail("kitchen: repeat drew an unselected value")
        drawn = page.evaluate("""({
            heat: document.querySelectorAll('.dpanel-heatmap canvas').length,
            rows: document.querySelectorAll('.dpanel-table tbody tr').length,
            slices: document.querySelectorAll('.dpanel-piechart path, .dpanel-piechart circle').length,
            single: (document.querySelector('.dpanel-stat .dstat-value') || {}).textContent,
            neg: null})""")
        if not drawn["heat"] or drawn["rows"] < 1 or drawn["slices"] < 2:
            fail(f"kitchen: drawn {drawn}")
        # A legend placed on the right, with its calculation, beside the chart.
        right = page.evaluate("""(() => { const p = Array.from(document.querySelectorAll('.dpanel')).find(p => p.querySelector('.dpanel-title').textContent === 'stacked percent');
            const l = p.querySelector('.dlegend'), c = p.querySelector('.uplot');
            return {beside: l.getBoundingClientRect().left >= c.getBoundingClientRect().right - 1,
                    items: Array.from(l.querySelectorAll('.dlegend-item')).map(i => i.textContent)}; })()""")
        if not right["beside"] or not right["items"] or not all("Last *: " in t for t in right["items"]):
            fail(f"kitchen: right-hand legend {right}")
        # Transformed tables: the columns Grafana shows, one row per mount point the query
        # answers at the panel's time (mount points come and go on this machine, so Sightline's
        # own answer at that instant, not Prometheus's a moment later).
        disk_t = [p for p in panels if p["title"] == "disk space"][0]["spec"]["targets"][0]
        mounts = {r["metric"]["mountpoint"] for r in get_json(ui + "/api/v1/query?" + urllib.parse.urlencode(
            {"query": disk_t["expr"], "time": str(disk_t["time"] / 1000)}))["data"]["result"]}
        tables = page.evaluate("""Object.fromEntries(Array.from(document.querySelectorAll('.dpanel'))
            .filter(p => ['disk space', 'old table'].includes(p.querySelector('.dpanel-title').textContent))
            .map(p => [p.querySelector('.dpanel-title').textContent, {
                head: Array.from(p.querySelectorAll('thead th')).map(t => t.textContent),
                rows: Array.from(p.querySelectorAll('tbody tr')).map(r => Array.from(r.querySelectorAll('td')).map(t => t.textContent))}]))""")
        disk = tables.get("disk space", {})
        if disk.get("head") != ["Mounted on", "Size", "Available", "Used", "Used, %"]:
            fail(f"disk space table: columns {disk.get('head')}")
        elif not mounts or {r[0] for r in disk["rows"]} != mounts or len(disk["rows"]) != len(mounts):
            fail(f"disk space table: rows {disk['rows']}, the query answers mount points {sorted(mounts)}")
        elif not all(re.fullmatch(r"\d+(\.\d+)?%|NaN", r[4]) and r[1].endswith("B") for r in disk["rows"]):
            fail(f"disk space table: cells {disk['rows']}")
        old_table = tables.get("old table", {})
        if old_table.get("head") != ["mountpoint", "Size"] or len(old_table.get("rows", [])) != len(mounts):
            fail(f"legacy table with styles: {old_table}")
        mean = page.evaluate("""Array.from(document.querySelectorAll('.dpanel')).filter(p => p.querySelector('.dpanel-title').textContent === 'mean of rows')
            .map(p => Array.from(p.querySelectorAll('.dlegend-item .name')).map(n => n.textContent))""")
        if mean != [["load mean"]]:
            fail(f"a chart of each row's mean draws {mean}")
        single = [p for p in panels if p["title"] == "legacy singlestat"]
        text = page.evaluate("Array.from(document.querySelectorAll('.dpanel')).filter(p => p.querySelector('.dpanel-title').textContent === 'legacy singlestat').map(p => p.querySelector('.dstat-value').textContent)")
        if text != ["90%"]:
            fail(f"legacy singlestat shows {text}, want 90% (percentunit, current)")
        loki = [p for p in panels if p["title"] == "from Loki"]
        if not loki or "Loki" not in loki[0]["msg"]:
            fail(f"the Loki panel does not say why: {loki}")
        page.screenshot(path=os.path.join(args.shots, "dashboard-panel-types.png"), full_page=True)
        # Time zones: the table's time in UTC and in Tokyo are nine hours apart.
        stamps = {}
        for tz in ("utc", "Asia/Tokyo"):
            open_all(page, ui + "/ui/dashboards/kitchen?from=now-5m&timezone=" + urllib.parse.quote(tz))
            stamps[tz] = page.text_content(".dpanel-table tbody tr td")
        try:
            hours = [int(stamps[tz].split(" ")[1].split(":")[0]) for tz in ("utc", "Asia/Tokyo")]
            if (hours[1] - hours[0]) % 24 != 9:
                fail(f"time zones: {stamps}")
        except (IndexError, ValueError):
            fail(f"time zones: unreadable times {stamps}")
        panels, _ = open_all(page, ui + "/ui/dashboards/legacy?from=now-5m")
        if [p["state"] for p in panels] != ["data", "data"]:
            fail(f"Grafana 4 rows: {[(p['title'], p['state'], p['msg']) for p in panels]}")

        # --- export gives the stored JSON back; delete removes an upload
        exported = get_json(ui + "/ui/dashboards/kitchen/export")
        if exported.get("uid") != "kitchen" or len(exported.get("panels", [])) != len(kitchen["panels"]):
            fail("export does not give the dashboard back")
        page.goto(ui + "/ui/dashboards")
        page.click("#dash-list tr:has(a:text-is('Grafana 4 rows')) button")
        page.wait_for_load_state()
        if "Grafana 4 rows" in page.text_content("#dash-list"):
            fail("delete left the dashboard listed")

        # --- bad input
        page.goto(ui + "/ui/dashboards")
        big = '{"title":"big","panels":[],"description":"' + "x" * (20 << 20) + '"}'
        page.evaluate("t => { document.getElementById('dash-json').value = t }", big)
        page.click("#dash-import-submit")
        page.wait_for_selector("#dash-error")
        msg = page.text_content("#dash-error")
        if "limit is 10485760 bytes" not in msg:
            fail(f"20 MB dashboard: {msg!r}")
        page.fill("#dash-json", '{"title": "broken", "panels": [')
        page.click("#dash-import-submit")
        page.wait_for_selector("#dash-error")
        msg = page.text_content("#dash-error")
        if "not valid JSON" not in msg:
            fail(f"malformed JSON: {msg!r}")
        many = {"uid": "many", "title": "500 panels", "panels": [
            {"id": i, "type": "stat", "title": f"p{i}", "gridPos": {"x": (i % 8) * 3, "y": (i // 8) * 3, "w": 3, "h": 3},
             "targets": [{"expr": f"vector({i})", "refId": "A", "instant": True}]} for i in range(500)],
            "templating": {"list": [{"name": "many", "type": "custom", "multi": True, "includeAll": True,
                                     "query": ",".join(f"v{i}" for i in range(100000))}]}}
        hostile = {"uid": "hostile", "title": "hostile text", "panels": [
            {"id": 1, "type": "text", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 6}, "options": {"mode": "markdown", "content":
                "# Notes\n<script>window.__xss.push('script')</script>\n[click](javascript:window.__xss.push('link'))\n"
                "<img src=x onerror=\"window.__xss.push('img')\">\n![i](javascript:alert(1))"}},
            {"id": 2, "type": "text", "gridPos": {"x": 0, "y": 6, "w": 24, "h": 4}, "mode": "html",
             "content": "<iframe src=\"javascript:window.__xss.push('iframe')\"></iframe><b onclick=x()>bold</b>"}]}
        for d in (many, hostile):
            page.fill("#dash-json", json.dumps(d))
            page.click("#dash-import-submit")
            page.wait_for_selector("#dash-imported")
        t0 = time.time()
        panels, _ = open_all(page, ui + "/ui/dashboards/many")
        n = len(panels)
        if any(p["state"] != "data" for p in panels):
            fail("500-panel dashboard: panels without data: " + str([p["title"] for p in panels if p["state"] != "data"][:5]))
        note = page.text_content(".dash-var-note") or ""
        opts = len(var_options(page, "many"))
        if n != 500:
            fail(f"500-panel dashboard drew {n} panels")
        if "first 10000 of 100000 values" not in note or opts != 10001:
            fail(f"100,000-value variable: note {note!r}, {opts} options")
        print(f"500 panels and a 100,000-value variable: {time.time() - t0:.2f} s", flush=True)
        page.goto(ui + "/ui/dashboards/hostile")
        page.wait_for_timeout(500)
        xss = page.evaluate("window.__xss")
        hrefs = page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')).filter(h => /^\\s*javascript:/i.test(h))")
        scripts = page.evaluate("document.querySelectorAll('.dpanel script, .dpanel img, .dpanel iframe').length")
        if xss or hrefs or scripts:
            fail(f"text panel ran or kept active content: xss={xss} hrefs={hrefs} elements={scripts}")
        if "<script>" not in page.text_content(".dpanel .markdown"):
            fail("the text panel does not show the raw HTML as text")
        csp = urllib.request.urlopen(ui + "/ui/dashboards/hostile").headers.get("content-security-policy", "")
        if "unsafe-inline" in csp or "script-src 'self'" not in csp:
            fail(f"CSP: {csp}")

        # --- a narrow window: one column, nothing wider than the window
        page.set_viewport_size({"width": 600, "height": 900})
        narrow, _ = open_all(page, ui + "/ui/dashboards/Oxed_c6Wz?from=now-5m")
        if sum(p["state"] == "data" for p in narrow) < 7:
            fail(f"narrow window: {[(p['title'], p['state']) for p in narrow]}")
        widths = page.evaluate("Array.from(document.querySelectorAll('.dpanel')).map(p => p.getBoundingClientRect().width)")
        if min(widths) < 500:
            fail(f"narrow window: panels are not one per line: widths {widths}")
        cut = page.evaluate("Array.from(document.querySelectorAll('.dlegend')).filter(l => l.scrollWidth > l.clientWidth + 1).length")
        if cut:
            fail(f"narrow window: {cut} legends are wider than their room")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            fail(f"narrow window: the page is {overflow}px wider than the window")
        page.screenshot(path=os.path.join(args.shots, "dashboard-dcgm-narrow.png"), full_page=True)
        if errors:
            fail(f"browser errors: {errors[:5]}")
        browser.close()
    if FAILS:
        print(f"{len(FAILS)} failures", flush=True)
        sys.exit(1)
    print("dashboards in the browser: all checks passed", flush=True)


if __name__ == "__main__":
    main()
