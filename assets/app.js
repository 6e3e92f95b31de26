// Sightline's page script: time-range picker and auto-refresh, charts (uPlot) from PromQL range
// queries, the Logs page's volume histogram and live tail, the trace search scatter plot, the trace waterfall with its GPU lane, and metric-name
// completion. Data is untrusted: it is only ever set as textContent or attribute values.
(function () {
  'use strict';
  const body = document.body;
  const BASE = body.dataset.base || '';
  const START = Number(body.dataset.start);
  const END = Number(body.dataset.end);
  const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d',
    '#ea580c', '#4f46e5', '#0d9488', '#b45309', '#7c3aed', '#0284c7', '#be123c', '#15803d'];
  const colour = (i) => PALETTE[i % PALETTE.length];

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function cssVar(name) {
    return getComputedStyle(body).getPropertyValue(name).trim() || '#888';
  }

  // ------------------------------------------------------------ range, refresh, forms
  document.querySelectorAll('select[data-param]').forEach((sel) => {
    sel.addEventListener('change', () => {
      const u = new URL(location.href);
      u.searchParams.set(sel.dataset.param, sel.value);
      if (sel.dataset.param === 'range') u.searchParams.delete('end');
      location.assign(u.toString());
    });
  });
  document.querySelectorAll('select[data-submit]').forEach((sel) => {
    sel.addEventListener('change', () => {
      const op = sel.form.querySelector('select[name=operation]');
      if (op) op.value = '';
      sel.form.submit();
    });
  });
  const refresh = { '5s': 5, '10s': 10, '30s': 30, '1m': 60 }[body.dataset.refresh];
  if (refresh && body.dataset.fixedEnd !== 'true') {
    setTimeout(() => location.reload(), refresh * 1000);
  }

  // ------------------------------------------------------------ formatting
  function fmt(unit, v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (unit === 's') {
      if (a === 0) return '0';
      if (a < 1e-3) return (v * 1e6).toFixed(0) + ' µs';
      if (a < 1) return (v * 1e3).toFixed(a < 0.01 ? 2 : 1) + ' ms';
      return v.toFixed(2) + ' s';
    }
    if (unit === 'B' || unit === 'B/s') {
      const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let x = a, i = 0;
      while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
      return (v < 0 ? '-' : '') + x.toFixed(i ? 1 : 0) + ' ' + u[i] + (unit === 'B/s' ? '/s' : '');
    }
    const short = (x) => (Math.abs(x) >= 10 ? x.toFixed(0) : String(+x.toFixed(1)));
    let s;
    if (a >= 1e9) s = short(v / 1e9) + 'G';
    else if (a >= 1e6) s = short(v / 1e6) + 'M';
    else if (a >= 1e4) s = short(v / 1e3) + 'k';
    else if (a >= 1 || a === 0) s = short(v);
    else s = String(+v.toPrecision(2));
    return unit ? s + ' ' + unit : s;
  }
  function labelText(m) {
    const parts = Object.keys(m).filter((k) => k !== '__name__').sort().map((k) => k + '=' + JSON.stringify(m[k]));
    return (m.__name__ || '') + (parts.length ? '{' + parts.join(', ') + '}' : '');
  }
  function duration(us) {
    return fmt('s', us / 1e6);
  }

  // ------------------------------------------------------------ charts
  async function rangeQuery(q, start, end, step) {
    const p = new URLSearchParams({ query: q, start: String(start), end: String(end), step: String(step) });
    const r = await fetch(BASE + '/api/v1/query_range?' + p.toString());
    const j = await r.json();
    if (j.status !== 'success') throw new Error(j.error || ('HTTP ' + r.status));
    return j.data.result;
  }

  async function drawChart(box) {
    const series = JSON.parse(box.dataset.series || '[]');
    const unit = box.dataset.unit || '';
    const step = Math.max(1, Math.ceil((END - START) / 1000 / 240));
    // Steps counted back from the end, so the newest point is "now".
    const end = END / 1000;
    const count = Math.floor((END - START) / 1000 / step);
    const start = end - count * step;
    const rate = Math.max(4 * step, 60) + 's';
    const xs = [];
    for (let k = 0; k <= count; k++) xs.push(start + k * step);
    const cols = [xs];
    const names = [];
    box.replaceChildren(el('h3', null, box.dataset.title || ''));
    try {
      for (const [legend, q] of series) {
        const res = await rangeQuery(q.replaceAll('$rate', rate).replaceAll('$step', step + 's'), start, end, step);
        for (const s of res) {
          const col = new Array(xs.length).fill(null);
          for (const [t, v] of s.values) {
            const i = Math.round((t - start) / step);
            const n = Number(v);
            if (i >= 0 && i < xs.length && Number.isFinite(n)) col[i] = n;
          }
          cols.push(col);
          names.push(legend && res.length === 1 ? legend : (legend ? legend + ' ' : '') + labelText(s.metric));
        }
      }
    } catch (e) {
      box.append(el('p', 'error', 'Query failed: ' + e.message));
      box.dataset.drawn = 'error';
      return;
    }
    box.dataset.series_count = String(names.length);
    if (names.length === 0) {
      box.append(el('p', 'empty', 'No data in this range.'));
      box.dataset.drawn = 'empty';
      return;
    }
    let marks = [];
    if (box.dataset.markers) {
      try {
        const res = await rangeQuery(box.dataset.markers.replaceAll('$step', step + 's').replaceAll('$rate', rate), start, end, step);
        for (const s of res) for (const [t, v] of s.values) if (Number(v) > 0) marks.push(Number(t));
      } catch (e) { /* markers are optional */ }
    }
    const fg = cssVar('--muted');
    const opts = {
      width: Math.max(200, box.clientWidth - 8),
      height: 180,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: fg, grid: { stroke: cssVar('--grid') } },
        { stroke: fg, grid: { stroke: cssVar('--grid') }, size: 80, values: (u, vals) => vals.map((v) => fmt(unit, v)) },
      ],
      // Sparse series (a few samples so far) get dots, or a lone point would not show.
      series: [{}].concat(names.map((n, i) => ({
        label: n, stroke: colour(i), width: 1.5, value: (u, v) => fmt(unit, v), spanGaps: false,
        points: { show: cols[i + 1].filter((v) => v !== null).length < 30, size: 5, fill: colour(i) },
      }))),
      hooks: {
        draw: [(u) => {
          if (!marks.length) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = cssVar('--bad');
          ctx.lineWidth = 2;
          for (const t of marks) {
            const x = Math.round(u.valToPos(t, 'x', true));
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
    const plot = new uPlot(opts, cols, box);
    box.dataset.drawn = 'chart';
    box.dataset.markersCount = String(marks.length);
    window.addEventListener('resize', () => plot.setSize({ width: Math.max(200, box.clientWidth - 8), height: 180 }));
  }
  document.querySelectorAll('.chart[data-series]').forEach((c) => { drawChart(c); });

  // ------------------------------------------------------------ logs: volume by level, live tail
  const LEVEL_COLOURS = { unknown: '#94a3b8', trace: '#a3a3a3', debug: '#0891b2', info: '#16a34a',
    warn: '#d97706', error: '#dc2626', fatal: '#9333ea' };
  function drawVolume(box) {
    const v = JSON.parse(box.dataset.volume || '{}');
    const levels = v.levels || [];
    box.replaceChildren(el('h3', null, box.dataset.title || ''));
    if (!levels.length) {
      box.append(el('p', 'empty', 'No lines in this range.'));
      box.dataset.drawn = 'empty';
      return;
    }
    const n = levels[0][1].length;
    const xs = [];
    for (let i = 0; i < n; i++) xs.push(v.start + i * v.step);
    // Stacked: each level's bar starts where the ones below it end; drawn tallest first.
    const stacked = [];
    let acc = new Array(n).fill(0);
    for (const [, counts] of levels) {
      acc = acc.map((a, i) => a + counts[i]);
      stacked.push(acc.map((a) => (a > 0 ? a : null)));
    }
    const order = levels.map((_, i) => i).reverse();
    const fg = cssVar('--muted');
    const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.9, 40], align: 1 }) : undefined;
    const opts = {
      width: Math.max(200, box.clientWidth - 8),
      height: 120,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: fg, grid: { stroke: cssVar('--grid') } },
        { stroke: fg, grid: { stroke: cssVar('--grid') }, size: 60 },
      ],
      series: [{}].concat(order.map((i) => ({
        label: levels[i][0], stroke: LEVEL_COLOURS[levels[i][0]] || colour(i),
        fill: LEVEL_COLOURS[levels[i][0]] || colour(i), paths: bars, points: { show: false },
        value: (u, x, si, idx) => (idx === null || idx === undefined ? '' : String(levels[i][1][idx])),
      }))),
    };
    const plot = new uPlot(opts, [xs].concat(order.map((i) => stacked[i])), box);
    box.dataset.drawn = 'chart';
    box.dataset.total = String(acc.reduce((a, b) => a + b, 0));
    window.addEventListener('resize', () => plot.setSize({ width: Math.max(200, box.clientWidth - 8), height: 120 }));
  }
  const volume = document.getElementById('log-volume');
  if (volume) drawVolume(volume);

  function isoNs(ns) {
    const ms = Number(ns.slice(0, -6) || '0');
    return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
  }
  const tailButton = document.getElementById('log-tail');
  if (tailButton) {
    let ws = null;
    let received = 0;
    const status = document.getElementById('log-tail-status');
    const table = document.getElementById('log-results');
    const tbody = table.querySelector('tbody');
    const stop = () => {
      if (ws) ws.close();
      ws = null;
      tailButton.textContent = 'Live tail';
    };
    tailButton.addEventListener('click', () => {
      if (ws) { stop(); return; }
      const p = new URLSearchParams({ query: tailButton.dataset.query, limit: '100', start: String(Date.now()) + '000000' });
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      ws = new WebSocket(proto + '//' + location.host + BASE + '/loki/api/v1/tail?' + p.toString());
      tailButton.textContent = 'Stop tail';
      status.hidden = false;
      status.textContent = 'Live: waiting for new lines…';
      ws.addEventListener('open', () => { tailButton.dataset.state = 'open'; });
      ws.addEventListener('message', (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch (e) { return; }
        const rows = [];
        for (const s of msg.streams || []) {
          const lab = s.stream || {};
          for (const [ts, line] of s.values || []) rows.push([ts, line, lab]);
        }
        rows.sort((a, b) => (a[0].length - b[0].length) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        for (const [ts, line, lab] of rows) {
          const tr = el('tr', 'tailed');
          tr.append(el('td', null, isoNs(ts)), el('td', null, lab.level || lab.detected_level || ''),
            el('td', null, lab.service_name || ''));
          const bodyCell = el('td', 'body', line);
          bodyCell.append(el('div', 'labels', Object.entries(lab).map(([k, x]) => k + '="' + x + '"').join(', ')));
          const traceCell = el('td');
          const tid = lab.trace_id || '';
          if (/^[0-9a-f]{32}$/.test(tid)) {
            const a = el('a', null, tid);
            a.href = BASE + '/ui/trace/' + tid + location.search;
            traceCell.append(a);
          }
          tr.append(bodyCell, traceCell);
          tbody.prepend(tr);
          received++;
        }
        while (tbody.children.length > 500) tbody.lastElementChild.remove();
        table.hidden = false;
        const empty = document.getElementById('log-empty');
        if (empty) empty.hidden = true;
        status.textContent = 'Live: ' + received + ' new line' + (received === 1 ? '' : 's');
        tailButton.dataset.received = String(received);
      });
      ws.addEventListener('close', (ev) => {
        if (ws) status.textContent = 'Live tail stopped' + (ev.reason ? ': ' + ev.reason : '') + '.';
        stop();
      });
    });
  }

  // ------------------------------------------------------------ trace search scatter
  const scatter = document.getElementById('scatter');
  if (scatter) {
    const pts = JSON.parse(scatter.dataset.points || '[]');
    const canvas = el('canvas');
    scatter.append(canvas);
    const W = Math.max(300, scatter.clientWidth), H = 160, pad = 30;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = W * dpr; canvas.height = H * dpr;
    canvas.style.width = W + 'px'; canvas.style.height = H + 'px';
    const ctx = canvas.getContext('2d');
    ctx.scale(dpr, dpr);
    const t0 = Math.min(...pts.map((p) => p[0]), START), t1 = Math.max(...pts.map((p) => p[0]), END);
    const dmax = Math.max(1, ...pts.map((p) => p[1]));
    const X = (t) => pad + (t - t0) / Math.max(1, t1 - t0) * (W - 2 * pad);
    const Y = (d) => H - pad / 2 - d / dmax * (H - pad);
    ctx.fillStyle = cssVar('--muted');
    ctx.font = '11px sans-serif';
    ctx.fillText(duration(dmax * 1000), 2, 10);
    const spots = pts.map((p) => ({ x: X(p[0]), y: Y(p[1]), id: p[2], err: p[3] > 0 }));
    for (const s of spots) {
      ctx.beginPath();
      ctx.fillStyle = s.err ? cssVar('--bad') : cssVar('--accent');
      ctx.arc(s.x, s.y, 4, 0, 2 * Math.PI);
      ctx.fill();
    }
    canvas.addEventListener('click', (ev) => {
      const r = canvas.getBoundingClientRect();
      const x = ev.clientX - r.left, y = ev.clientY - r.top;
      let best = null, bd = 100;
      for (const s of spots) {
        const d = (s.x - x) ** 2 + (s.y - y) ** 2;
        if (d < bd) { bd = d; best = s; }
      }
      if (best) location.assign(BASE + '/ui/trace/' + encodeURIComponent(best.id) + location.search.replace(/^\?/, '?'));
    });
    scatter.dataset.drawn = String(spots.length);
  }

  // ------------------------------------------------------------ metric-name completion
  const promql = document.getElementById('promql');
  if (promql) {
    let loaded = false;
    promql.addEventListener('focus', async () => {
      if (loaded) return;
      loaded = true;
      try {
        const j = await (await fetch(BASE + '/api/v1/label/__name__/values')).json();
        const list = document.getElementById('metric-names');
        for (const n of (j.data || []).slice(0, 5000)) {
          const o = document.createElement('option');
          o.value = n;
          list.append(o);
        }
        promql.dataset.completions = String(list.children.length);
      } catch (e) { loaded = false; }
    });
  }

  // ------------------------------------------------------------ trace view
  const traceBox = document.getElementById('trace');
  if (traceBox) traceView(traceBox);

  async function traceView(box) {
    const id = box.dataset.traceId;
    const summary = document.getElementById('trace-summary');
    let data;
    try {
      const r = await fetch(BASE + '/ui/data/trace/' + encodeURIComponent(id));
      data = await r.json();
      if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
    } catch (e) {
      summary.textContent = 'Trace ' + id + ' could not be loaded: ' + e.message;
      summary.className = 'error';
      box.dataset.ready = 'error';
      return;
    }
    const S = data.spans; // [id, parent, service, name, start µs, duration µs, error, kind]
    const n = S.length;
    const kids = Array.from({ length: n }, () => []);
    const roots = [];
    for (let i = 0; i < n; i++) (S[i][1] >= 0 ? kids[S[i][1]] : roots).push(i);
    let total = 1;
    for (const s of S) total = Math.max(total, s[4] + s[5]);
    // Critical path: from each span's end backwards, the child that finished last before the
    // cursor, then the one before its start, and so on.
    const critical = new Uint8Array(n);
    function crit(i) {
      const stack = [i];
      while (stack.length) {
        const v = stack.pop();
        critical[v] = 1;
        let cursor = S[v][4] + S[v][5];
        const byEnd = kids[v].slice().sort((a, b) => (S[b][4] + S[b][5]) - (S[a][4] + S[a][5]));
        for (const c of byEnd) {
          const end = S[c][4] + S[c][5];
          if (end <= cursor + 1 && S[c][4] >= S[v][4]) {
            stack.push(c);
            cursor = S[c][4];
          }
        }
      }
    }
    roots.forEach(crit);
    const depth = new Int32Array(n);
    const order = [];
    (function walk() {
      const stack = roots.slice().reverse().map((r) => [r, 0]);
      while (stack.length) {
        const [v, d] = stack.pop();
        depth[v] = d;
        order.push(v);
        for (let k = kids[v].length - 1; k >= 0; k--) stack.push([kids[v][k], d + 1]);
      }
    })();
    const errors = S.filter((s) => s[6]).length;
    const root = roots.length ? S[roots[0]] : S[0];
    summary.textContent = data.services[root[2]] + ': ' + root[3] + ' · ' + n + ' spans · ' +
      data.services.length + (data.services.length === 1 ? ' service · ' : ' services · ') + duration(total) + (errors ? ' · ' + errors + ' errors' : '');
    box.dataset.spans = String(n);
    box.dataset.duration = String(total);

    // Ruler.
    const ruler = document.getElementById('ruler');
    const rl = el('div', 'label', 'Service · operation');
    const ra = el('div', 'area');
    for (let k = 0; k <= 4; k++) {
      const tick = el('span', 'tick', duration(total * k / 4));
      tick.style.left = (k * 25) + '%';
      ra.append(tick);
    }
    ruler.replaceChildren(rl, ra);

    // Rows, virtualised: only those in view exist in the page.
    const ROW = 24;
    const collapsed = new Uint8Array(n);
    let visible = [];
    function computeVisible() {
      visible = [];
      let skipDepth = -1;
      for (const v of order) {
        if (skipDepth >= 0) {
          if (depth[v] > skipDepth) continue;
          skipDepth = -1;
        }
        visible.push(v);
        if (collapsed[v]) skipDepth = depth[v];
      }
    }
    // Very large traces open with everything below the third level collapsed.
    if (n > 2000) for (const v of order) if (depth[v] === 2 && kids[v].length) collapsed[v] = 1;
    computeVisible();
    const wf = document.getElementById('waterfall');
    const rowsBox = document.getElementById('rows');
    let selected = -1;
    function render() {
      rowsBox.style.height = (visible.length * ROW) + 'px';
      const first = Math.max(0, Math.floor(wf.scrollTop / ROW) - 10);
      const last = Math.min(visible.length, Math.ceil((wf.scrollTop + wf.clientHeight) / ROW) + 10);
      const frag = document.createDocumentFragment();
      for (let k = first; k < last; k++) {
        const v = visible[k];
        const s = S[v];
        const row = el('div', 'row' + (s[6] ? ' err' : '') + (critical[v] ? ' crit' : '') + (v === selected ? ' sel' : ''));
        row.style.top = (k * ROW) + 'px';
        row.dataset.span = s[0];
        const label = el('div', 'label');
        label.style.paddingLeft = (4 + depth[v] * 14) + 'px';
        if (kids[v].length) {
          const t = el('button', 'toggle', collapsed[v] ? '▸' : '▾');
          t.title = (collapsed[v] ? 'expand ' : 'collapse ') + kids[v].length + ' children';
          t.addEventListener('click', (ev) => { ev.stopPropagation(); collapsed[v] ^= 1; computeVisible(); render(); });
          label.append(t);
        } else {
          label.append(el('span', 'toggle-space'));
        }
        const sw = el('span', 'swatch');
        sw.style.background = colour(s[2]);
        label.append(sw, el('span', 'svc', data.services[s[2]]), el('span', 'op', s[3]));
        if (s[6]) label.append(el('span', 'errmark', '!'));
        const area = el('div', 'area');
        const bar = el('div', 'bar');
        bar.style.left = (s[4] / total * 100) + '%';
        bar.style.width = Math.max(0.15, s[5] / total * 100) + '%';
        bar.style.background = colour(s[2]);
        bar.dataset.start = String(s[4]);
        bar.dataset.duration = String(s[5]);
        area.append(bar, el('span', 'dur', duration(s[5])));
        row.append(label, area);
        row.addEventListener('click', () => { selected = v; render(); details(s[0]); });
        frag.append(row);
      }
      rowsBox.replaceChildren(frag);
    }
    wf.addEventListener('scroll', () => requestAnimationFrame(render));
    render();
    box.dataset.ready = String(performance.now());

    // Span details on click.
    async function gpuOf(spanId) {
      try {
        const r = await fetch(BASE + '/api/traces/' + encodeURIComponent(id) + '/gpu?pad=0&span=' + encodeURIComponent(spanId));
        const g = await r.json();
        return r.ok && g.spans.length ? g.spans[0].gpus.filter((x) => !x.migInstance) : [];
      } catch (e) {
        return [];
      }
    }
    async function details(spanId) {
      const panel = document.getElementById('detail');
      panel.hidden = false;
      panel.replaceChildren(el('p', 'empty', 'Loading span…'));
      let d;
      try {
        const r = await fetch(BASE + '/ui/data/trace/' + encodeURIComponent(id) + '/span/' + encodeURIComponent(spanId));
        d = await r.json();
        if (!r.ok) throw new Error(d.error || r.status);
      } catch (e) {
        panel.replaceChildren(el('p', 'error', 'Span could not be loaded: ' + e.message));
        return;
      }
      const close = el('button', 'close', '×');
      close.addEventListener('click', () => { panel.hidden = true; });
      const h = el('h2', null, d.service + ': ' + d.name);
      const kv = (title, rows) => {
        const sec = el('section');
        sec.append(el('h3', null, title));
        if (!rows.length) { sec.append(el('p', 'empty', 'none')); return sec; }
        const t = el('table', 'kv');
        for (const [k, v] of rows) {
          const tr = el('tr');
          tr.append(el('th', null, k), el('td', null, v));
          t.append(tr);
        }
        sec.append(t);
        return sec;
      };
      const basics = [['span id', d.spanID], ['kind', d.kind], ['duration', duration(d.duration)],
        ['status', d.status.code + (d.status.message ? ': ' + d.status.message : '')]];
      for (const x of await gpuOf(d.spanID)) basics.push(['GPU ' + x.gpu + ' busy during this span', x.meanUtilization.toFixed(1) + ' %']);
      panel.replaceChildren(close, h, kv('Span', basics), kv('Attributes', d.attributes));
      const ev = el('section');
      ev.append(el('h3', null, 'Events'));
      if (!d.events.length) ev.append(el('p', 'empty', 'none'));
      for (const e of d.events) ev.append(kv('+' + duration(e.offset) + ' ' + e.name, e.attributes));
      panel.append(ev);
      const links = d.links.map((l) => ['link', l.traceID + ' / ' + l.spanID]);
      panel.append(kv('Links', links), kv('Resource', d.resource));
      if (d.scope) panel.append(kv('Scope', [['name', d.scope.name], ['version', d.scope.version]]));
      panel.dataset.span = d.spanID;
    }

    // GPU lane: utilisation of the GPUs on the trace's hosts across its window.
    const lane = document.getElementById('gpu-lane');
    const note = document.getElementById('gpu-lane-note');
    try {
      const r = await fetch(BASE + '/api/traces/' + encodeURIComponent(id) + '/gpu?pad=0&spans=none');
      const g = await r.json();
      if (!r.ok) throw new Error((g.errors && g.errors[0] && g.errors[0].msg) || r.status);
      const gpus = g.gpus.filter((x) => !x.migInstance && x.series.utilization);
      if (!gpus.length) {
        note.textContent = !g.hosts.length
          ? 'No GPU lane: the spans do not say which host they ran on (set the resource attribute host.name).'
          : 'No GPU samples for ' + g.hosts.join(', ') + ' in this window.';
        lane.dataset.gpus = '0';
      } else {
        lane.replaceChildren();
        const t0 = data.start / 1000, t1 = (data.start + total) / 1000;
        for (const gpu of gpus) {
          const row = el('div', 'lane-row');
          const label = el('div', 'label', gpu.host + ' GPU ' + gpu.gpu + ' util');
          const area = el('div', 'area');
          const canvas = el('canvas');
          area.append(canvas);
          row.append(label, area);
          lane.append(row);
          const W = Math.max(100, area.clientWidth), H = 28;
          const dpr = window.devicePixelRatio || 1;
          canvas.width = W * dpr; canvas.height = H * dpr;
          canvas.style.width = W + 'px'; canvas.style.height = H + 'px';
          const ctx = canvas.getContext('2d');
          ctx.scale(dpr, dpr);
          ctx.fillStyle = cssVar('--accent');
          const pts = gpu.series.utilization;
          for (let k = 0; k < pts.length; k++) {
            const a = Math.max(t0, pts[k][0]);
            const b = Math.min(t1, k + 1 < pts.length ? pts[k + 1][0] : t1);
            if (b <= a) continue;
            const x = (a - t0) / Math.max(1, t1 - t0) * W;
            const w = Math.max(1, (b - a) / Math.max(1, t1 - t0) * W);
            const h = Math.min(100, pts[k][1]) / 100 * H;
            ctx.fillRect(x, H - h, w, h);
          }
        }
        lane.dataset.gpus = String(gpus.length);
      }
      if (g.events.length) {
        const ev = el('p', 'note', 'GPU events in this window: ' + g.events.map((e) => e.kind + ' ' + e.detail + ' on GPU ' + e.gpu).join('; '));
        lane.append(ev);
      }
    } catch (e) {
      note.textContent = 'GPU use could not be loaded: ' + e.message;
      lane.dataset.gpus = 'error';
    }
  }
})();
