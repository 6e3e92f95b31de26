"""Times one dashboard page in headless Chromium (Debian's, through Playwright), for
`cargo bench --bench dashboards`: each run opens the page in a fresh browser context (nothing
cached) in a 1600x1000 window, expands every collapsed row at once (a dashboard of up to 150
panels loads every open panel, in view or not), and
waits until every panel has finished. Reports, per run and as the median: the time from
navigation start to the last panel drawn, the panels by final state, and the bytes transferred
(the page, its assets and every query answer)."""

import argparse
import statistics
import sys
import time
from collections import Counter

from playwright.sync_api import sync_playwright

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--runs", type=int, default=5)
args = ap.parse_args()

times, sizes, queries = [], [], []
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    for run in range(args.runs + 1):
        ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = ctx.new_page()
        # Chromium keeps 250 resource timings by default; the page makes more requests.
        page.add_init_script("performance.setResourceTimingBufferSize(10000)")
        navs = []
        page.on("framenavigated", lambda f: navs.append(f.url))
        page.on("pageerror", lambda e: print("page error:", e, flush=True))
        page.goto(args.url, wait_until="load")
        page.evaluate("document.querySelectorAll('.dash-section.collapsed .dash-row-toggle').forEach(b => b.click())")
        deadline = time.time() + 120
        while True:
            try:
                if page.evaluate("window.__dashPending && window.__dashPending() === 0"):
                    break
            except Exception as e:
                sys.exit(f"the page went away ({e}); navigations: {navs}")
            if time.time() > deadline:
                stuck = page.evaluate("Array.from(document.querySelectorAll('.dpanel[data-state=idle], .dpanel[data-state=loading]')).map(p => p.dataset.state + ' ' + p.querySelector('.dpanel-title').textContent)")
                sys.exit(f"panels still pending after 120 s: {stuck}")
            page.wait_for_timeout(20)
        r = page.evaluate("""(() => {
            const ps = Array.from(document.querySelectorAll('.dpanel'));
            const res = performance.getEntriesByType('resource');
            const nav = performance.getEntriesByType('navigation')[0];
            return {
              last: Math.max(...ps.map(p => +(p.dataset.doneAt || 0))),
              states: ps.map(p => p.dataset.state),
              bytes: nav.transferSize + res.reduce((a, e) => a + e.transferSize, 0),
              html: nav.transferSize,
              queries: res.filter(e => e.name.includes('/api/v1/query')).length,
              qsum: res.filter(e => e.name.includes('/api/v1/query')).reduce((a, e) => a + (e.responseEnd - e.requestStart), 0),
              qwait: res.filter(e => e.name.includes('/api/v1/query')).reduce((a, e) => a + (e.requestStart - e.startTime), 0),
              qlast: Math.max(...res.filter(e => e.name.includes('/api/v1/query')).map(e => e.responseEnd)),
              qfirst: Math.min(...res.filter(e => e.name.includes('/api/v1/query')).map(e => e.startTime)),
            };
        })()""")
        ctx.close()
        states = Counter(r["states"])
        label = "warm-up" if run == 0 else f"run {run}"
        print(f"{label}: last panel drawn at {r['last'] / 1000:.2f} s; {len(r['states'])} panels {dict(states)}; "
              f"{r['bytes'] / 1024:.0f} KiB transferred (page {r['html'] / 1024:.0f} KiB), {r['queries']} queries "
              f"(first sent at {r['qfirst'] / 1000:.2f} s, last answered at {r['qlast'] / 1000:.2f} s, "
              f"{r['qsum'] / 1000:.1f} s in flight and {r['qwait'] / 1000:.1f} s queued in the browser, summed)", flush=True)
        if states.get("error") or states.get("unsupported"):
            sys.exit("panels failed: " + str(dict(states)))
        if run:
            times.append(r["last"] / 1000)
            sizes.append(r["bytes"])
            queries.append(r["queries"])
    browser.close()
print(f"median over {args.runs} runs: last panel drawn at {statistics.median(times):.2f} s, "
      f"{statistics.median(sizes) / 1024:.0f} KiB transferred, {int(statistics.median(queries))} queries")
