// The Dashboards page: places Grafana panels on the 24-column grid, runs each panel's queries
// (already interpolated by the server) against Sightline's Prometheus API when the panel comes
// into view, and draws time series (uPlot), stat, gauge, bar gauge, table, heatmap, pie and bar
// panels with Grafana's field config: units (assets/units.js), decimals, min/max, thresholds,
// colours, display names, overrides by name and regex, stacking, fill and negative-Y. Every
// panel ends in a `data-state`: data, nodata, error, unsupported or text. Data is untrusted:
// it is only ever set as textContent or attribute values.
(function () {
  'use strict';
  // The list page's import form: a chosen file is read into the JSON field.
  const file = document.getElementById('dash-file');
  const json = document.getElementById('dash-json');
  if (file && json) {
    file.addEventListener('change', () => {
      const f = file.files && file.files[0];
      if (!f) return;
      f.text().then((t) => { json.value = t; });
    });
  }
  const root = document.getElementById('dash');
  if (!root) return;
  const BASE = document.body.dataset.base || '';
  const U = window.SightlineUnits;
  const F = window.SightlineFrames;
  // The dashboard's zone: the browser's, UTC, or an IANA name.
  const TZ = root.dataset.tz === 'utc' ? 'Etc/UTC' : (root.dataset.tz !== 'browser' ? root.dataset.tz : '');
  let zoneOk = !!TZ;
  try { if (TZ) new Intl.DateTimeFormat('en', { timeZone: TZ }); } catch (e) { zoneOk = false; }
  const SYNC = root.dataset.sync === 'true' && window.uPlot ? uPlot.sync('dash') : null;
  const MAX_TABLE_ROWS = 1000;
  const MAX_SERIES = 200;
  const MAX_TABLE_SERIES = 20000;
  const plots = [];

  const NAMED = {
    green: '#73BF69', 'dark-green': '#37872D', 'semi-dark-green': '#56A64B', 'light-green': '#96D98D', 'super-light-green': '#C8F2C2',
    red: '#F2495C', 'dark-red': '#C4162A', 'semi-dark-red': '#E02F44', 'light-red': '#FF7383', 'super-light-red': '#FFA6B0',
    yellow: '#FADE2A', 'dark-yellow': '#E0B400', 'semi-dark-yellow': '#F2CC0C', 'light-yellow': '#FFEE52', 'super-light-yellow': '#FFF899',
    orange: '#FF9830', 'dark-orange': '#FA6400', 'semi-dark-orange': '#FF780A', 'light-orange': '#FFB357', 'super-light-orange': '#FFCB7D',
    blue: '#5794F2', 'dark-blue': '#1F60C4', 'semi-dark-blue': '#3274D9', 'light-blue': '#8AB8FF', 'super-light-blue': '#C0D8FF',
    purple: '#B877D9', 'dark-purple': '#8F3BB8', 'semi-dark-purple': '#A352CC', 'light-purple': '#CA95E5', 'super-light-purple': '#DEB6F2',
    transparent: 'rgba(0,0,0,0)', text: '', white: '#ffffff', black: '#000000',
  };
  const CLASSIC = ['#7EB26D', '#EAB839', '#6ED0E0', '#EF843C', '#E24D42', '#1F78C1', '#BA43A9', '#705DA0', '#508642',
    '#CCA300', '#447EBC', '#C15C17', '#890F02', '#0A437C', '#6D1F62', '#584477', '#B7DBAB', '#F4D598', '#70DBED',
    '#F9BA8F', '#F29191', '#82B5D8', '#E5A8E2', '#AEA2E0'];
  function colour(c) {
    if (!c) return '';
    if (Object.prototype.hasOwnProperty.call(NAMED, c)) return NAMED[c] || getComputedStyle(document.body).color;
    // Only plain colour syntaxes reach the style: names, #hex, rgb(a)/hsl(a).
    return /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}|(rgb|rgba|hsl|hsla)\([0-9., %]+\))$/.test(c) ? c : '';
  }
  function withAlpha(c, a) {
    const m = /^#([0-9a-fA-F]{6})$/.exec(c);
    if (m) return c + Math.round(Math.max(0, Math.min(1, a)) * 255).toString(16).padStart(2, '0');
    return c;
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }

  // ------------------------------------------------------------ layout, controls, refresh
  document.querySelectorAll('.dpanel').forEach((p) => {
    const x = +p.dataset.x, y = +p.dataset.y, w = +p.dataset.w, h = +p.dataset.h;
    p.style.gridColumn = (x + 1) + ' / span ' + w;
    p.style.gridRow = (y + 1) + ' / span ' + h;
  });
  const controls = document.getElementById('dash-controls');
  if (controls) {
    controls.querySelectorAll('select[data-var], select[name=refresh], select[name=timezone]').forEach((s) => {
      s.addEventListener('change', () => {
        // "All" and specific values exclude each other, as in Grafana's picker.
        if (s.multiple) {
          const all = Array.from(s.options).find((o) => o.value === '$__all');
          if (all && all.selected && s.selectedOptions.length > 1) {
            if (s.dataset.wasAll === 'true') all.selected = false;
            else Array.from(s.options).forEach((o) => { o.selected = o === all; });
          }
          s.dataset.wasAll = String(!!(all && all.selected));
        }
        controls.submit();
      });
      if (s.multiple) {
        const all = Array.from(s.options).find((o) => o.value === '$__all');
        s.dataset.wasAll = String(!!(all && all.selected));
        s.size = Math.min(6, s.options.length);
      }
    });
    const quick = controls.querySelector('.dash-quick');
    if (quick) {
      quick.addEventListener('change', () => {
        if (!quick.value) return;
        controls.querySelector('input[name=from]').value = quick.value;
        controls.querySelector('input[name=to]').value = 'now';
        quick.removeAttribute('name');
        controls.submit();
      });
    }
  }
  const REFRESH_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5 };
  const rm = /^(\d+)([smhd])$/.exec(root.dataset.refresh || '');
  if (rm) setTimeout(() => location.reload(), Math.max(5000, +rm[1] * REFRESH_MS[rm[2]]));

  document.querySelectorAll('.dash-row-toggle').forEach((b) => {
    b.addEventListener('click', () => {
      const sec = b.closest('.dash-section');
      const open = sec.classList.toggle('collapsed') === false;
      b.setAttribute('aria-expanded', String(open));
      if (open) sec.querySelectorAll('.dpanel').forEach(observe);
    });
  });

  // ------------------------------------------------------------ queries
  function num(s) {
    if (s === '+Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    const v = parseFloat(s);
    return Number.isNaN(v) ? null : v;
  }
  async function query(t) {
    const p = new URLSearchParams({ query: t.expr });
    let path;
    if (t.instant) {
      path = '/api/v1/query';
      p.set('time', String(t.time / 1000));
    } else {
      path = '/api/v1/query_range';
      p.set('start', String(t.start / 1000));
      p.set('end', String(t.end / 1000));
      p.set('step', String(t.step / 1000));
    }
    const body = p.toString();
    const r = body.length > 6000
      ? await fetch(BASE + path, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body })
      : await fetch(BASE + path + '?' + body);
    let j;
    try { j = await r.json(); } catch (e) { throw new Error('HTTP ' + r.status); }
    if (j.status !== 'success') throw new Error(j.error || ('HTTP ' + r.status));
    const d = j.data, out = [];
    if (d.resultType === 'matrix') {
      for (const s of d.result) out.push({ labels: s.metric, times: s.values.map((v) => v[0]), values: s.values.map((v) => num(v[1])) });
    } else if (d.resultType === 'vector') {
      for (const s of d.result) out.push({ labels: s.metric, times: [s.value[0]], values: [num(s.value[1])] });
    } else if (d.resultType === 'scalar') {
      out.push({ labels: {}, times: [d.result[0]], values: [num(d.result[1])] });
    }
    return out;
  }
  function seriesName(labels, legend, expr) {
    if (legend && legend !== '__auto') {
      const named = legend.replace(/\{\{\s*(.+?)\s*\}\}/g, (_, k) => (labels[k] !== undefined ? labels[k] : ''));
      // A legend that comes out empty (its labels missing) names the series by its labels, as
      // in Grafana.
      if (named !== '') return named;
    }
    const keys = Object.keys(labels).filter((k) => k !== '__name__').sort();
    const inner = keys.map((k) => k + '="' + labels[k] + '"').join(', ');
    if (!labels.__name__ && !keys.length) return expr;
    return (labels.__name__ || '') + '{' + inner + '}';
  }

  // ------------------------------------------------------------ field config
  function matches(m, f) {
    if (!m) return false;
    const o = m.options;
    switch (m.id) {
      case 'byName': return f.name === o || f.display === o;
      case 'byRegexp': {
        const re = jsRegex(o);
        return !!re && (re.test(f.display) || re.test(f.name));
      }
      case 'byNames': return !!o && Array.isArray(o.names) && (o.names.includes(f.name) || o.names.includes(f.display));
      case 'byFrameRefID': return f.refId === o;
      default: return false;
    }
  }
  // Grafana's regex strings: `/body/flags` or a bare pattern.
  function jsRegex(o) {
    if (typeof o !== 'string' || o.length > 1000) return null;
    const m = /^\/(.*)\/([gimsuy]*)$/.exec(o);
    try { return m ? new RegExp(m[1], m[2].replace('g', '')) : new RegExp(o); } catch (e) { return null; }
  }
  function setPath(obj, path, v) {
    const parts = path.split('.');
    let o = obj;
    for (let i = 0; i < parts.length - 1; i++) {
      if (typeof o[parts[i]] !== 'object' || o[parts[i]] === null) o[parts[i]] = {};
      o = o[parts[i]];
    }
    o[parts[parts.length - 1]] = v;
  }
  // The panel's defaults, then what a transformation set on the field (a new name), then the
  // overrides that match it.
  function fieldConfig(spec, f, own) {
    const c = JSON.parse(JSON.stringify(spec.field || {}));
    if (own && own.displayName) c.displayName = own.displayName;
    for (const ov of spec.overrides || []) {
      if (!matches(ov.matcher, f)) continue;
      for (const p of ov.properties || []) if (p && p.id) setPath(c, p.id, p.value);
    }
    return c;
  }
  function displayName(c, f) {
    if (!c.displayName) return f.display;
    return String(c.displayName)
      .replace(/\$\{__field\.labels\.([^}]+)\}/g, (_, k) => (f.labels[k] !== undefined ? f.labels[k] : ''))
      .replace(/\$\{__field\.labels\}/g, () => seriesName(f.labels, '', ''))
      .replace(/\$\{__(series|field)\.name\}/g, () => f.display)
      .replace(/\$\{__field\.displayName\}/g, () => f.display);
  }
  function fmtValue(c, v) {
    if (v === null || v === undefined) return 'No data';
    const mapped = mapValue(c, v);
    if (mapped !== null) return mapped;
    return U.format(c.unit, v, c.decimals);
  }
  function mapValue(c, v) {
    for (const m of c.mappings || []) {
      const o = m.options || {};
      if (m.type === 'value' && o[String(v)] && o[String(v)].text !== undefined) return o[String(v)].text;
      if (m.type === 'range' && v !== null && (o.from === null || o.from === undefined || v >= o.from) &&
          (o.to === null || o.to === undefined || v <= o.to) && o.result && o.result.text !== undefined) return o.result.text;
      if (m.type === 'special' && o.result && o.result.text !== undefined &&
          ((o.match === 'null' && v === null) || (o.match === 'nan' && Number.isNaN(v)))) return o.result.text;
    }
    return null;
  }
  function thresholdColour(c, v, lo, hi) {
    const t = c.thresholds || { mode: 'absolute', steps: [{ color: 'green', value: null }] };
    const steps = (t.steps || []).slice().sort((a, b) => (a.value === null || a.value === undefined ? -Infinity : a.value) - (b.value === null || b.value === undefined ? -Infinity : b.value));
    let x = v;
    if (t.mode === 'percentage') {
      const min = c.min !== undefined && c.min !== null ? c.min : lo;
      const max = c.max !== undefined && c.max !== null ? c.max : hi;
      x = max > min ? ((v - min) / (max - min)) * 100 : 0;
    }
    let col = steps.length ? steps[0].color : 'green';
    for (const s of steps) if (s.value === null || s.value === undefined || x >= s.value) col = s.color;
    return colour(col) || NAMED.green;
  }
  function seriesColour(c, i, v, lo, hi) {
    const cm = (c.color && c.color.mode) || 'palette-classic';
    if (cm === 'fixed' || cm === 'shades') return colour(c.color.fixedColor) || CLASSIC[i % CLASSIC.length];
    if (cm === 'thresholds') return thresholdColour(c, v === undefined ? 0 : v, lo, hi);
    return CLASSIC[i % CLASSIC.length];
  }
  const reduce = F.reduce;

  // ------------------------------------------------------------ panels
  const observer = 'IntersectionObserver' in window
    ? new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.isIntersecting) { observer.unobserve(e.target); load(e.target); }
      }
    }, { rootMargin: '300px' })
    : null;
  // Up to this many panels, every panel of an open row loads at once; a larger dashboard loads
  // panels as they come into view.
  const EAGER = document.querySelectorAll('.dpanel').length <= 150;
  function observe(p) {
    if (p.dataset.state !== 'idle') return;
    if (p.closest('.dash-section.collapsed')) return;
    if (observer && !EAGER) observer.observe(p); else load(p);
  }
  function message(p, state, text) {
    p.dataset.state = state;
    p.dataset.doneAt = String(Math.round(performance.now()));
    const b = p.querySelector('.dpanel-body');
    b.textContent = '';
    b.appendChild(el('p', 'dpanel-msg' + (state === 'error' ? ' bad' : ''), text));
  }

  async function load(p) {
    if (p.dataset.state !== 'idle') return;
    p.dataset.state = 'loading';
    let spec;
    try { spec = JSON.parse(p.dataset.spec); } catch (e) { message(p, 'error', 'panel spec unreadable'); return; }
    const targets = spec.targets || [];
    const failed = targets.find((t) => t.error);
    if (failed) { message(p, 'error', failed.error); return; }
    if (!targets.length) { message(p, 'nodata', 'No queries'); return; }
    let frames = [];
    try {
      const results = await Promise.all(targets.map((t) => query(t).then((r) => r.map((s) => Object.assign(s, { refId: t.refId, legend: t.legend, expr: t.expr, format: t.format })))));
      frames = results.flat();
    } catch (e) {
      message(p, 'error', String(e.message || e));
      return;
    }
    for (const f of frames) {
      f.name = seriesName(f.labels, f.legend, f.expr);
      f.display = f.name;
    }
    // A chart's, stat's or gauge's transformations run on Grafana's frames, which then become
    // series again (a table keeps the frames: drawTable).
    const list = Array.isArray(spec.transformations) ? spec.transformations : [];
    if (list.length && spec.type !== 'table') {
      const r = F.transform(F.fromSeries(frames, targets.length), list);
      frames = F.toSeries(r.frames, (spec.range ? spec.range[1] : Date.now()) / 1000).map((s) => Object.assign(s, { display: s.name }));
      if (r.skipped.length) p.querySelector('.dpanel-title').title = 'not applied by Sightline: ' + r.skipped.join(', ');
    }
    // A table merges and groups many series into its rows (one per host, say): it keeps more.
    const cap = spec.type === 'table' ? MAX_TABLE_SERIES : MAX_SERIES;
    if (frames.length > cap) frames = frames.slice(0, cap);
    const hasData = frames.some((f) => f.values.some((v) => v !== null));
    if (!hasData) { message(p, 'nodata', 'No data'); return; }
    const body = p.querySelector('.dpanel-body');
    body.textContent = '';
    try {
      const draw = { timeseries: drawSeries, stat: drawStat, gauge: drawGauge, bargauge: drawBars, barchart: drawBars, table: drawTable, heatmap: drawHeatmap, piechart: drawPie }[spec.type];
      if (!draw) { message(p, 'unsupported', 'panel type ' + spec.type + ' is not drawn by Sightline'); return; }
      draw(body, spec, frames);
      p.dataset.state = 'data';
      p.dataset.doneAt = String(Math.round(performance.now()));
      p.dataset.series = String(frames.length);
    } catch (e) {
      message(p, 'error', 'could not draw: ' + String(e.message || e));
    }
  }

  function fieldsOf(spec, frames) {
    return frames.map((f, i) => {
      const c = fieldConfig(spec, f);
      const name = displayName(c, f);
      let values = f.values;
      if (c.custom && c.custom.transform === 'negative-Y') values = values.map((v) => (v === null ? null : -v));
      return { f, c, name, values, i };
    });
  }

  function drawSeries(body, spec, frames) {
    const fields = fieldsOf(spec, frames);
    const tset = new Set();
    for (const f of frames) for (const t of f.times) tset.add(t);
    const xs = Array.from(tset).sort((a, b) => a - b);
    const pos = new Map(xs.map((t, i) => [t, i]));
    let cols = fields.map((fd) => {
      const col = new Array(xs.length).fill(null);
      fd.f.times.forEach((t, j) => { const v = fd.values[j]; col[pos.get(t)] = (v === null || !isFinite(v)) ? null : v; });
      return col;
    });
    // Stacking by group: each field adds onto the previous ones of its group.
    const stackMode = (fd) => (fd.c.custom && fd.c.custom.stacking && fd.c.custom.stacking.mode) || 'none';
    const groups = {};
    const percent = fields.some((fd) => stackMode(fd) === 'percent');
    if (percent) {
      const totals = xs.map((_, k) => fields.reduce((a, fd, i) => a + (stackMode(fd) !== 'none' && cols[i][k] !== null ? Math.abs(cols[i][k]) : 0), 0));
      cols = cols.map((col, i) => (stackMode(fields[i]) === 'none' ? col : col.map((v, k) => (v === null || !totals[k] ? v : (v / totals[k]) * 100))));
    }
    cols = cols.map((col, i) => {
      const fd = fields[i];
      if (stackMode(fd) === 'none') return col;
      const grp = fd.c.custom.stacking.group;
      const g = (grp === undefined || grp === null ? 'A' : String(grp)) + (col.some((v) => v !== null && v < 0) ? '-' : '+');
      fd.stackGroup = g;
      const acc = groups[g] || new Array(xs.length).fill(0);
      const out = col.map((v, k) => (v === null ? null : acc[k] + v));
      groups[g] = acc.map((a, k) => (col[k] === null ? a : a + col[k]));
      return out;
    });
    const dc = spec.field || {};
    const unit = percent ? 'percent' : dc.unit;
    const lg = (spec.options && spec.options.legend) || {};
    const legendOn = lg.showLegend !== false && lg.displayMode !== 'hidden';
    const series = [{}].concat(fields.map((fd, i) => {
      const col = seriesColour(fd.c, i);
      const cu = fd.c.custom || {};
      const fill = cu.fillOpacity !== undefined ? cu.fillOpacity / 100 : 0;
      const s = {
        label: fd.name,
        stroke: col,
        width: cu.lineWidth !== undefined ? cu.lineWidth : 1,
        fill: fill > 0 ? withAlpha(col, fill) : undefined,
        spanGaps: cu.spanNulls === true,
        points: pointsOf(cu),
      };
      if (cu.drawStyle === 'bars' && uPlot.paths && uPlot.paths.bars) s.paths = uPlot.paths.bars({ size: [0.8, 40] });
      if (cu.hideFrom && cu.hideFrom.viz) s.show = false;
      return s;
    }));
    // The y range: the field's min and max where set, else the data's, padded; all values
    // zero gives 0 to 1 as Grafana draws it (uPlot's own is 0 to 100), and a range that would be
    // empty (min 0 over zeros) is one unit tall.
    const yscale = {
      auto: true,
      range: (u, lo, hi) => {
        let [a, b] = lo === 0 && hi === 0 ? [0, 1] : uPlot.rangeNum(lo, hi, 0.1, true);
        if (typeof dc.min === 'number' && !percent) a = dc.min;
        if (typeof dc.max === 'number' && !percent) b = dc.max;
        if (percent) [a, b] = [Math.min(0, lo), Math.max(100, hi)];
        if (!(b > a)) b = a + 1;
        return [a, b];
      },
    };
    // The x axis spans the panel's time range, as Grafana's does, not just the data in it.
    const range = Array.isArray(spec.range) && spec.range.length === 2 ? [spec.range[0] / 1000, spec.range[1] / 1000] : null;
    const opts = {
      legend: { show: false },
      cursor: SYNC ? { sync: { key: SYNC.key } } : {},
      scales: { x: range ? { time: true, range: () => range } : { time: true }, y: yscale },
      series,
      axes: [
        { stroke: axisColour(), grid: { stroke: gridColour() }, values: timeTicks, space: timeSpace, incrs: TIME_INCRS },
        { stroke: axisColour(), grid: { stroke: gridColour() }, size: axisWidth, values: (u, splits) => splits.map((v) => U.format(unit, v, dc.decimals)) },
      ],
    };
    // Stacked series fill down to the series below them in their group, not to zero.
    const bands = [];
    const lastOf = {};
    fields.forEach((fd, i) => {
      if (!fd.stackGroup) return;
      if (lastOf[fd.stackGroup] !== undefined) bands.push({ series: [i + 1, lastOf[fd.stackGroup] + 1] });
      lastOf[fd.stackGroup] = i;
    });
    if (bands.length) opts.bands = bands;
    if (zoneOk) opts.tzDate = (ts) => uPlot.tzDate(new Date(ts * 1e3), TZ);
    // When the chart was last drawn (it draws after this function returns, when uPlot commits),
    // what it spans once its x scale is set, and how many values it draws there, for tests and
    // the benchmark to read.
    const panel = body.closest('.dpanel');
    opts.hooks = { draw: [() => { if (panel) panel.dataset.doneAt = String(Math.round(performance.now())); }], setScale: [(u, key) => {
      if (key === 'y' && panel) panel.dataset.yrange = u.scales.y.min + ',' + u.scales.y.max;
      if (key !== 'x' || !panel) return;
      const lo = u.scales.x.min, hi = u.scales.x.max;
      let visible = 0;
      for (let i = 1; i < u.data.length; i++) {
        if (u.series[i].show === false) continue;
        u.data[i].forEach((v, k) => { if (v !== null && u.data[0][k] >= lo && u.data[0][k] <= hi) visible++; });
      }
      panel.dataset.xrange = lo + ',' + hi;
      panel.dataset.visible = String(visible);
    }] };
    const tipMode = (spec.options && spec.options.tooltip && spec.options.tooltip.mode) || 'single';
    if (tipMode !== 'none') opts.hooks.setCursor = [(u) => tooltip(u, body, fields, unit, tipMode)];
    // The legend first, so the chart is sized once to the room it leaves (a second size would
    // draw every chart twice). A legend on the right (Grafana's placement "right") where the
    // panel is wide enough for it.
    let plot = null;
    let legend = null;
    if (legendOn) {
      if (lg.placement === 'right' && body.clientWidth >= 400) body.classList.add('legend-right');
      legend = body.appendChild(legendOf(() => plot, fields, unit, lg, series));
      // One that needs more than 40% of the width (a narrow window, long names) goes below.
      if (body.classList.contains('legend-right') && legend.scrollWidth > body.clientWidth * 0.4) body.classList.remove('legend-right');
    }
    Object.assign(opts, room(body));
    plot = new uPlot(opts, [xs].concat(cols), (u, init) => { body.insertBefore(u.root, legend); init(); });
    plots.push({ plot, body });
  }
  // The legend as Grafana's: a list (or a table) of the series with their colours and the
  // legend's calculations (min, mean, max, last ...) of each series' own values, in its unit.
  // A click shows that series alone; a second click, or a click with Ctrl/Shift, toggles back.
  function legendOf(plotOf, fields, unit, lg, series) {
    const calcs = (Array.isArray(lg.calcs) ? lg.calcs : []).filter((c) => typeof c === 'string').slice(0, 8);
    const table = lg.displayMode === 'table';
    const box = el('div', 'dlegend' + (table ? ' table' : ''));
    const shown = fields.filter((fd) => !(fd.c.custom && fd.c.custom.hideFrom && fd.c.custom.hideFrom.legend));
    const rows = table ? el('table') : box;
    if (table) {
      const head = el('tr');
      head.appendChild(el('th', 'name', ''));
      for (const c of calcs) head.appendChild(el('th', null, F.calcName(c)));
      rows.appendChild(el('thead')).appendChild(head);
      rows.appendChild(el('tbody'));
      box.appendChild(rows);
    }
    const items = [];
    for (const fd of shown.slice(0, 200)) {
      const si = fd.i + 1;
      const item = el(table ? 'tr' : 'span', 'dlegend-item');
      const name = el(table ? 'td' : 'span', 'name');
      const mark = el('i', 'dlegend-mark');
      mark.style.background = series[si].stroke;
      name.appendChild(mark);
      name.appendChild(document.createTextNode(fd.name));
      item.appendChild(name);
      const raw = fd.f.values.map((v) => (v === null || !isFinite(v) ? null : v));
      for (const c of calcs) {
        const v = fmtLegend(fd.c, unit, reduce(c, raw));
        item.appendChild(table ? el('td', null, v) : el('span', 'calc', F.calcName(c) + ': ' + v));
      }
      item.addEventListener('click', (e) => {
        const plot = plotOf();
        if (!plot) return;
        const alone = plot.series.every((s, k) => k === 0 || (k === si) === s.show);
        plot.series.forEach((s, k) => {
          if (k === 0) return;
          const show = e.ctrlKey || e.metaKey || e.shiftKey ? (k === si ? !s.show : s.show) : (alone ? true : k === si);
          if (s.show !== show) plot.setSeries(k, { show });
        });
        items.forEach(([k, it]) => it.classList.toggle('off', !plot.series[k].show));
      });
      items.push([si, item]);
      (table ? rows.querySelector('tbody') : box).appendChild(item);
    }
    return box;
  }
  function fmtLegend(c, unit, v) {
    return v === null || v === undefined ? '-' : U.format(c.unit || unit, v, c.decimals);
  }
  // The hover tooltip: the time under the cursor and the series' values there (all of them, or
  // in "single" mode the one nearest the cursor). Only on the chart the pointer is over.
  function tooltip(u, body, fields, unit, mode) {
    let tip = body.querySelector('.dtip');
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined || !u.cursor.event || u.cursor.left < 0) { if (tip) tip.hidden = true; return; }
    if (!tip) { tip = el('div', 'dtip'); body.appendChild(tip); }
    tip.textContent = '';
    tip.appendChild(el('div', 'dtip-time', fmtDate(u.data[0][idx])));
    let rows = fields.map((fd, i) => [fd, i + 1]).filter(([, si]) => u.series[si].show && u.data[si][idx] !== null && u.data[si][idx] !== undefined);
    if (mode === 'single' && rows.length) {
      const y = u.posToVal(u.cursor.top, 'y');
      rows = [rows.reduce((a, b) => (Math.abs(u.data[b[1]][idx] - y) < Math.abs(u.data[a[1]][idx] - y) ? b : a))];
    }
    for (const [fd, si] of rows.slice(0, 30)) {
      const r = el('div', 'dtip-row');
      const mark = el('i', 'dlegend-mark');
      mark.style.background = u.series[si].stroke();
      r.appendChild(mark);
      r.appendChild(el('span', 'name', fd.name));
      const j = fd.f.times.indexOf(u.data[0][idx]);
      r.appendChild(el('b', null, fmtLegend(fd.c, unit, j < 0 ? null : fd.f.values[j])));
      tip.appendChild(r);
    }
    tip.hidden = false;
    const over = u.over.getBoundingClientRect(), own = body.getBoundingClientRect();
    const x = over.left - own.left + u.cursor.left, yPx = over.top - own.top + u.cursor.top;
    const left = x + 12 + tip.offsetWidth > body.clientWidth ? Math.max(0, x - 12 - tip.offsetWidth) : x + 12;
    tip.style.left = left + 'px';
    tip.style.top = Math.max(0, Math.min(body.clientHeight - tip.offsetHeight, yPx + 12)) + 'px';
  }
  // Points: always (or a points draw style), never, or auto (uPlot's: when there is room for
  // them). Where points are not drawn, a value with no neighbour is still drawn as a point, as
  // Grafana draws it, so a series of isolated samples is not an empty chart.
  function pointsOf(cu) {
    const mode = cu.drawStyle === 'points' ? 'always' : (cu.showPoints || 'auto');
    const p = { filter: isolated };
    if (mode === 'always') p.show = true;
    else if (mode === 'never') p.show = false;
    if (cu.pointSize) p.size = cu.pointSize;
    return p;
  }
  function isolated(u, si, show) {
    if (show || u.series[si].spanGaps) return null;
    const ys = u.data[si];
    const out = [];
    for (let i = 0; i < ys.length; i++) {
      if (ys[i] !== null && (i === 0 || ys[i - 1] === null) && (i === ys.length - 1 || ys[i + 1] === null)) out.push(i);
    }
    return out.length ? out : null;
  }
  // Time ticks in Grafana's 24-hour forms, chosen by the tick step and the range shown: year,
  // year-month, month/day, month/day hours:minutes (ranges over a day), hours:minutes, seconds.
  const FMT = {};
  function stamp(fmt, sec) {
    const f = FMT[fmt] || (FMT[fmt] = uPlot.fmtDate(fmt));
    const d = new Date(sec * 1000);
    return f(zoneOk ? uPlot.tzDate(d, TZ) : d);
  }
  function timeTicks(u, splits, axisIdx, space, incr) {
    const span = u.scales.x.max - u.scales.x.min;
    const fmt = incr >= 365 * 86400 ? '{YYYY}' : incr >= 28 * 86400 ? '{YYYY}-{MM}' : incr >= 86400 ? '{MM}/{DD}'
      : span > 86400 ? '{MM}/{DD} {HH}:{mm}' : incr >= 60 ? '{HH}:{mm}' : incr >= 1 ? '{HH}:{mm}:{ss}' : '{HH}:{mm}:{ss}.{fff}';
    return splits.map((v) => stamp(fmt, v));
  }
  // Tick steps in seconds (uPlot's own jump from 1 to 5 minutes leaves narrow charts one tick).
  const TIME_INCRS = [0.001, 0.01, 0.1, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
    43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400, 180 * 86400, 365 * 86400, 2 * 365 * 86400,
    5 * 365 * 86400, 10 * 365 * 86400];
  // Room per time tick, for the widest of those labels the range can give.
  function timeSpace(u, axisIdx, min, max) {
    const span = max - min;
    return span > 86400 ? 100 : span <= 1800 ? 90 : 70;
  }
  // The y axis as wide as its widest label (measured in the axis font), so no label is cut.
  let measure = null;
  function axisWidth(u, vals, axisIdx) {
    if (!vals || !vals.length) return 50;
    if (!measure) measure = document.createElement('canvas').getContext('2d');
    const ax = u.axes[axisIdx];
    measure.font = Array.isArray(ax.font) ? ax.font[0] : '12px sans-serif';
    const widest = Math.max(...vals.map((v) => measure.measureText(String(v)).width));
    const ticks = ax.ticks && ax.ticks.show !== false ? (ax.ticks.size || 10) : 0;
    return Math.ceil(widest + ticks + (ax.gap || 5) + 8);
  }
  function fit(plot, body) {
    const { width, height } = room(body);
    if (Math.abs(plot.width - width) > 1 || Math.abs(plot.height - height) > 1) plot.setSize({ width, height });
  }
  // The chart's size: the panel body less its legend (below, up to 40% of the height; on the
  // right, up to 40% of the width).
  function room(body) {
    const legend = body.querySelector('.dlegend');
    const right = body.classList.contains('legend-right');
    if (legend && right) legend.style.maxWidth = Math.round(body.clientWidth * 0.4) + 'px';
    else if (legend) legend.style.maxHeight = Math.max(24, Math.round(body.clientHeight * 0.4)) + 'px';
    const lh = legend && !right ? legend.offsetHeight : 0;
    const lw = legend && right ? legend.offsetWidth + 4 : 0;
    const width = Math.max(120, body.clientWidth - lw);
    const height = Math.max(50, body.clientHeight - lh - 4);
    return { width, height };
  }
  function fmtDate(sec) {
    const d = new Date(sec * 1000);
    // Grafana's "YYYY-MM-DD HH:mm:ss" in the dashboard's zone (the browser's by default).
    return d.toLocaleString('sv-SE', zoneOk ? { timeZone: TZ } : {});
  }
  let colours = null;
  function themeColours() {
    if (!colours) {
      const cs = getComputedStyle(document.body);
      colours = { axis: cs.getPropertyValue('--muted').trim() || '#888', grid: cs.getPropertyValue('--grid').trim() || '#eee' };
    }
    return colours;
  }
  function axisColour() { return themeColours().axis; }
  function gridColour() { return themeColours().grid; }

  function reduced(spec, frames) {
    const calc = ((spec.options && spec.options.reduceOptions && spec.options.reduceOptions.calcs) || ['lastNotNull'])[0];
    return fieldsOf(spec, frames).map((fd) => Object.assign(fd, { value: reduce(calc, fd.values) }));
  }
  function limits(fields) {
    const vs = fields.map((f) => f.value).filter((v) => v !== null && isFinite(v));
    return [vs.length ? Math.min(0, ...vs) : 0, vs.length ? Math.max(...vs) : 100];
  }

  function drawStat(body, spec, frames) {
    const fields = reduced(spec, frames);
    const [lo, hi] = limits(fields);
    const mode = (spec.options && spec.options.colorMode) || 'value';
    const wrap = el('div', 'dstat' + (fields.length > 1 ? ' many' : ''));
    for (const fd of fields) {
      const box = el('div', 'dstat-item');
      const col = fd.value === null ? '' : seriesColour(fd.c, fd.i, fd.value, lo, hi);
      if (fields.length > 1) box.appendChild(el('div', 'dstat-name', fd.name));
      const v = el('div', 'dstat-value', fmtValue(fd.c, fd.value));
      if (mode === 'background' || mode === 'background_solid') { box.style.background = col; box.classList.add('filled'); } else if (mode !== 'none') v.style.color = col;
      box.appendChild(v);
      wrap.appendChild(box);
    }
    body.appendChild(wrap);
    fitText(wrap);
  }
  function fitText(wrap) {
    const items = wrap.querySelectorAll('.dstat-value');
    const h = wrap.clientHeight / Math.max(1, Math.ceil(items.length / 4));
    const wEach = wrap.clientWidth / Math.min(4, items.length || 1);
    items.forEach((v) => {
      const size = Math.max(12, Math.min(h * 0.55, (wEach / Math.max(3, v.textContent.length)) * 1.6, 64));
      v.style.fontSize = size + 'px';
    });
  }

  function drawGauge(body, spec, frames) {
    const fields = reduced(spec, frames);
    const wrap = el('div', 'dgauges');
    for (const fd of fields) {
      const c = fd.c;
      const min = typeof c.min === 'number' ? c.min : 0;
      const max = typeof c.max === 'number' ? c.max : 100;
      const frac = fd.value === null ? 0 : Math.max(0, Math.min(1, (fd.value - min) / ((max - min) || 1)));
      const box = el('div', 'dgauge');
      const s = svg('svg', { viewBox: '0 0 200 162', role: 'img' });
      const arc = (a0, a1, r) => {
        const p = (a) => [100 + r * Math.cos(a), 100 + r * Math.sin(a)];
        const [x0, y0] = p(a0), [x1, y1] = p(a1);
        return 'M' + x0 + ' ' + y0 + ' A' + r + ' ' + r + ' 0 ' + (a1 - a0 > Math.PI ? 1 : 0) + ' 1 ' + x1 + ' ' + y1;
      };
      const A0 = Math.PI * 0.8, A1 = Math.PI * 2.2;
      s.appendChild(svg('path', { d: arc(A0, A1, 80), class: 'dgauge-track', fill: 'none', 'stroke-width': 16 }));
      const col = fd.value === null ? axisColour() : seriesColour(c, fd.i, fd.value, min, max);
      if (frac > 0.001) s.appendChild(svg('path', { d: arc(A0, A0 + (A1 - A0) * frac, 80), fill: 'none', stroke: col, 'stroke-width': 16 }));
      if (spec.options && spec.options.showThresholdMarkers !== false && c.thresholds && c.thresholds.steps) {
        const steps = c.thresholds.steps;
        for (let i = 0; i < steps.length; i++) {
          const from = i === 0 ? min : (c.thresholds.mode === 'percentage' ? min + (max - min) * steps[i].value / 100 : steps[i].value);
          const to = i + 1 < steps.length ? (c.thresholds.mode === 'percentage' ? min + (max - min) * steps[i + 1].value / 100 : steps[i + 1].value) : max;
          const f0 = Math.max(0, Math.min(1, (from - min) / ((max - min) || 1))), f1 = Math.max(0, Math.min(1, (to - min) / ((max - min) || 1)));
          if (f1 > f0) s.appendChild(svg('path', { d: arc(A0 + (A1 - A0) * f0, A0 + (A1 - A0) * f1, 96), fill: 'none', stroke: colour(steps[i].color) || '#888', 'stroke-width': 4 }));
        }
      }
      const t = svg('text', { x: 100, y: 110, 'text-anchor': 'middle', class: 'dgauge-value', fill: col });
      t.textContent = fmtValue(c, fd.value);
      s.appendChild(t);
      box.appendChild(s);
      if (fields.length > 1) box.appendChild(el('div', 'dstat-name', fd.name));
      wrap.appendChild(box);
    }
    body.appendChild(wrap);
  }

  function drawBars(body, spec, frames) {
    const fields = reduced(spec, frames);
    const [lo, hi] = limits(fields);
    const wrap = el('div', 'dbars');
    for (const fd of fields) {
      const c = fd.c;
      const min = typeof c.min === 'number' ? c.min : lo;
      const max = typeof c.max === 'number' ? c.max : hi;
      const frac = fd.value === null ? 0 : Math.max(0, Math.min(1, (fd.value - min) / ((max - min) || 1)));
      const row = el('div', 'dbar');
      row.appendChild(el('span', 'dbar-name', fd.name));
      const track = el('span', 'dbar-track');
      const fill = el('span', 'dbar-fill');
      fill.style.width = (frac * 100).toFixed(1) + '%';
      fill.style.background = fd.value === null ? '' : seriesColour(c, fd.i, fd.value, min, max);
      track.appendChild(fill);
      row.appendChild(track);
      row.appendChild(el('span', 'dbar-value', fmtValue(c, fd.value)));
      wrap.appendChild(row);
    }
    body.appendChild(wrap);
  }

  // Tables as Grafana draws them: the query answers as Grafana's data frames
  // (assets/frames.js), through the panel's transformations, each resulting frame a table.
  // Without transformations, time series are shown one row per series (its last value).
  function drawTable(body, spec, frames) {
    const nq = (spec.targets || []).length;
    const list = Array.isArray(spec.transformations) ? spec.transformations : [];
    let series = frames;
    if (!list.length) {
      series = frames.map((s) => (s.format === 'table' ? s : Object.assign({}, s, {
        format: 'table', times: s.times.slice(-1), values: [reduce('lastNotNull', s.values)],
      })));
    }
    const r = F.transform(F.fromSeries(series, nq), list);
    const data = r.frames.filter((fr) => fr.fields.length).slice(0, 20);
    const scroll = el('div', 'dtable');
    if (r.skipped.length) scroll.appendChild(el('p', 'muted dtable-note', 'not applied by Sightline: ' + r.skipped.join(', ') + ' (shown without)'));
    let budget = MAX_TABLE_ROWS;
    for (const fr of data) {
      if (data.length > 1) scroll.appendChild(el('p', 'dtable-caption', fr.name || fr.refId || ''));
      budget -= tableOf(scroll, spec, fr, budget);
      if (budget <= 0) break;
    }
    if (!data.length) scroll.appendChild(el('p', 'dpanel-msg', 'No data'));
    body.appendChild(scroll);
  }

  function cellMode(c) {
    const cu = c.custom || {};
    return (cu.cellOptions && cu.cellOptions.type) || cu.displayMode || 'auto';
  }
  // One frame as a table; returns the rows it drew.
  function tableOf(box, spec, fr, budget) {
    const cols = [];
    for (const f of fr.fields) {
      const probe = { name: f.name, display: F.display(f), refId: fr.refId, labels: f.labels || {} };
      const c = fieldConfig(spec, probe, f.config);
      if (c.custom && c.custom.hidden) continue;
      const nums = f.values.filter((v) => typeof v === 'number' && Number.isFinite(v));
      let lo = 0, hi = 100;
      if (nums.length) { lo = nums.reduce((a, b) => Math.min(a, b)); hi = nums.reduce((a, b) => Math.max(a, b)); }
      cols.push({ f, c, title: displayName(c, probe), lo: c.min !== undefined && c.min !== null ? c.min : lo, hi: c.max !== undefined && c.max !== null ? c.max : hi });
    }
    const n = F.rows(fr);
    let order = Array.from({ length: n }, (_, i) => i);
    const sortOf = (col, desc) => {
      order.sort((a, b) => {
        const x = col.f.values[a], y = col.f.values[b];
        if (x === y) return a - b;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        const d = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return desc ? -d : d;
      });
    };
    const first = ((spec.options || {}).sortBy || [])[0];
    if (first && first.displayName) {
      const col = cols.find((cl) => cl.title === first.displayName);
      if (col) sortOf(col, !!first.desc);
    }
    const table = el('table', 'data');
    const tb = el('tbody');
    const fill = () => {
      tb.textContent = '';
      for (const i of order.slice(0, budget)) {
        const tr = el('tr');
        for (const col of cols) tr.appendChild(cellOf(col, col.f.values[i]));
        tb.appendChild(tr);
      }
    };
    if ((spec.options || {}).showHeader !== false) {
      const head = el('tr');
      cols.forEach((col) => {
        const th = el('th', 'sortable' + (col.f.type === 'number' ? ' num' : ''), col.title);
        th.addEventListener('click', () => {
          const desc = th.dataset.sort === 'asc';
          head.querySelectorAll('th').forEach((x) => delete x.dataset.sort);
          th.dataset.sort = desc ? 'desc' : 'asc';
          sortOf(col, desc);
          fill();
        });
        head.appendChild(th);
      });
      table.appendChild(el('thead')).appendChild(head);
    }
    fill();
    table.appendChild(tb);
    const foot = (spec.options || {}).footer;
    if (foot && foot.show) {
      const calc = (Array.isArray(foot.reducer) && foot.reducer[0]) || 'sum';
      const only = Array.isArray(foot.fields) && foot.fields.length ? foot.fields : null;
      const tr = el('tr');
      cols.forEach((col, k) => {
        const use = col.f.type === 'number' && (!only || only.includes(col.title) || only.includes(col.f.name));
        const td = use ? el('td', 'num', fmtCell(col, reduce(calc, col.f.values))) : el('td', '', k === 0 ? F.calcName(calc) : '');
        tr.appendChild(td);
      });
      table.appendChild(el('tfoot')).appendChild(tr);
    }
    box.appendChild(table);
    if (n > budget) box.appendChild(el('p', 'muted', 'first ' + budget + ' of ' + n + ' rows'));
    return Math.min(n, budget);
  }
  function fmtCell(col, v) {
    if (v === null || v === undefined) return '';
    if (Array.isArray(v)) return v.join(', ');
    if (col.f.type === 'time') return typeof v === 'number' ? fmtDate(v) : String(v);
    if (typeof v === 'number') return fmtValue(col.c, v);
    const mapped = mapValue(col.c, v);
    return mapped !== null ? mapped : String(v);
  }
  function cellOf(col, v) {
    const td = el('td', typeof v === 'number' && col.f.type !== 'time' ? 'num' : '', fmtCell(col, v));
    const mode = cellMode(col.c);
    if (typeof v !== 'number' || col.f.type === 'time' || mode === 'auto') return td;
    const c = col.c.color && col.c.color.mode && col.c.color.mode !== 'thresholds' ? seriesColour(col.c, 0) : thresholdColour(col.c, v, col.lo, col.hi);
    if (mode === 'color-text') {
      td.style.color = c;
    } else if (mode === 'color-background' || mode === 'color-background-solid') {
      td.style.background = c;
      td.classList.add('dcell-bg');
    } else if (/gauge|basic/.test(mode)) {
      const bar = el('div', 'dcell-bar');
      const frac = col.hi > col.lo ? Math.max(0, Math.min(1, (v - col.lo) / (col.hi - col.lo))) : 0;
      bar.style.width = (frac * 100).toFixed(1) + '%';
      bar.style.background = c;
      const wrap = el('div', 'dcell-gauge');
      wrap.appendChild(bar);
      wrap.appendChild(el('span', null, fmtCell(col, v)));
      td.textContent = '';
      td.appendChild(wrap);
    }
    return td;
  }

  function drawHeatmap(body, spec, frames) {
    // Buckets by `le` (cumulative, as Prometheus histograms are) or one row per series.
    let rows = frames.map((f) => ({ f, le: f.labels.le !== undefined ? num(f.labels.le) : null }));
    const byLe = rows.every((r) => r.le !== null);
    if (byLe) rows.sort((a, b) => a.le - b.le);
    const tset = new Set();
    for (const f of frames) for (const t of f.times) tset.add(t);
    const xs = Array.from(tset).sort((a, b) => a - b);
    const pos = new Map(xs.map((t, i) => [t, i]));
    const grid = rows.map((r) => {
      const col = new Array(xs.length).fill(0);
      r.f.times.forEach((t, j) => { col[pos.get(t)] = r.f.values[j] || 0; });
      return col;
    });
    if (byLe) for (let i = grid.length - 1; i > 0; i--) for (let k = 0; k < xs.length; k++) grid[i][k] = Math.max(0, grid[i][k] - grid[i - 1][k]);
    let max = 0;
    for (const c of grid) for (const v of c) max = Math.max(max, v);
    const canvas = el('canvas', 'dheat');
    const w = Math.max(100, body.clientWidth), h = Math.max(40, body.clientHeight - 18);
    canvas.width = w; canvas.height = h;
    const g = canvas.getContext('2d');
    const cw = w / Math.max(1, xs.length), ch = h / Math.max(1, grid.length);
    for (let i = 0; i < grid.length; i++) {
      for (let k = 0; k < xs.length; k++) {
        const v = grid[i][k];
        if (!v) continue;
        const a = max ? Math.sqrt(v / max) : 0;
        g.fillStyle = 'rgba(255,120,10,' + (0.15 + 0.85 * a).toFixed(3) + ')';
        g.fillRect(k * cw, h - (i + 1) * ch, Math.ceil(cw), Math.ceil(ch));
      }
    }
    body.appendChild(canvas);
    const unit = (spec.field && spec.field.unit) || '';
    const legend = byLe ? 'buckets ' + rows.map((r) => (isFinite(r.le) ? U.format(unit || 'short', r.le) : '+Inf')).join(' · ') : rows.map((r) => r.f.name).join(' · ');
    body.appendChild(el('div', 'dheat-legend muted', legend));
  }

  function drawPie(body, spec, frames) {
    const fields = reduced(spec, frames).filter((f) => f.value !== null && f.value > 0);
    const total = fields.reduce((a, f) => a + f.value, 0);
    const wrap = el('div', 'dpie');
    const s = svg('svg', { viewBox: '-1.1 -1.1 2.2 2.2', role: 'img' });
    let a = -Math.PI / 2;
    fields.forEach((fd, i) => {
      const da = (fd.value / (total || 1)) * Math.PI * 2;
      const col = seriesColour(fd.c, i, fd.value, 0, total);
      if (da >= Math.PI * 2 - 1e-9) s.appendChild(svg('circle', { cx: 0, cy: 0, r: 1, fill: col }));
      else s.appendChild(svg('path', { d: 'M0 0 L' + Math.cos(a) + ' ' + Math.sin(a) + ' A1 1 0 ' + (da > Math.PI ? 1 : 0) + ' 1 ' + Math.cos(a + da) + ' ' + Math.sin(a + da) + ' Z', fill: col }));
      a += da;
    });
    wrap.appendChild(s);
    const ul = el('ul', 'dpie-legend');
    fields.forEach((fd, i) => {
      const li = el('li', '', fd.name + ': ' + fmtValue(fd.c, fd.value));
      li.style.borderLeftColor = seriesColour(fd.c, i, fd.value, 0, total);
      ul.appendChild(li);
    });
    wrap.appendChild(ul);
    body.appendChild(wrap);
  }

  document.querySelectorAll('.dpanel').forEach(observe);
  // A second way in, should an observer callback be missed: after scrolling stops, any waiting
  // panel near the window loads.
  let scrollTimer = null;
  window.addEventListener('scroll', () => {
    clearTimeout(scrollTimer);
    scrollTimer = setTimeout(() => {
      const h = window.innerHeight;
      document.querySelectorAll('.dash-section:not(.collapsed) .dpanel[data-state=idle]').forEach((p) => {
        const r = p.getBoundingClientRect();
        if (r.bottom > -300 && r.top < h + 300) { if (observer) observer.unobserve(p); load(p); }
      });
    }, 120);
  }, { passive: true });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => plots.forEach((p) => fit(p.plot, p.body)), 150);
  });
  // For tests and benchmarks: how many panels are still waiting or loading.
  window.__dashPending = () => document.querySelectorAll('.dash-section:not(.collapsed) .dpanel[data-state=idle], .dpanel[data-state=loading]').length;
})();
