// Data frames for the Dashboards page's tables, as Grafana shapes Prometheus answers, and the
// transformations Grafana dashboards apply to them before a table draws them (merge, organize,
// group by, add field from calculation, reduce, join by field, labels to fields, series to rows,
// filter by name, value or query, rename by regex, sort by, limit, concatenate, convert field
// type). Written from Grafana's documentation of each transformation; tested against its worked
// examples (tests/ui/frames_test.js). Plain data in, plain data out: no DOM here.
//
// A frame: {name, refId, fields: [{name, type: 'time'|'number'|'string'|'other', values, labels,
// config}]}; every field of a frame has as many values as the frame has rows.
(function (root) {
  'use strict';

  // Grafana's names of its calculations, as column headers and legend titles show them.
  const CALC_NAMES = {
    min: 'Min', max: 'Max', mean: 'Mean', last: 'Last', lastNotNull: 'Last *', first: 'First',
    firstNotNull: 'First *', sum: 'Total', count: 'Count', range: 'Range', delta: 'Delta',
    diff: 'Difference', diffperc: 'Difference percent', step: 'Step', logmin: 'Min (above zero)',
    allIsZero: 'All Zeros', allIsNull: 'All nulls', changeCount: 'Change count',
    distinctCount: 'Distinct count', variance: 'Variance', stdDev: 'StdDev', median: 'Median',
    allValues: 'All values', uniqueValues: 'All unique values',
  };
  // Rows a transformation may produce: beyond this the result is cut (and says so).
  const MAX_ROWS = 100000;

  function isNum(v) { return typeof v === 'number' && !Number.isNaN(v); }

  // One calculation over a field's values (numbers, or strings for the ones that take any).
  function reduce(calc, vals) {
    const n = vals.length;
    const present = [];
    const nums = [];
    for (let i = 0; i < n; i++) {
      const v = vals[i];
      if (v === null || v === undefined) continue;
      present.push(v);
      if (isNum(v)) nums.push(v);
    }
    switch (calc) {
      case 'last': return n ? vals[n - 1] : null;
      case 'first': return n ? vals[0] : null;
      case 'lastNotNull': return present.length ? present[present.length - 1] : null;
      case 'firstNotNull': return present.length ? present[0] : null;
      case 'count': return n;
      case 'distinctCount': return new Set(present).size;
      case 'allValues': return present;
      case 'uniqueValues': return Array.from(new Set(present));
      case 'allIsNull': return present.length === 0;
      case 'allIsZero': return present.length > 0 && present.every((v) => v === 0);
      case 'changeCount': {
        let c = 0;
        for (let i = 1; i < present.length; i++) if (present[i] !== present[i - 1]) c++;
        return c;
      }
      default: break;
    }
    if (!nums.length) return calc === 'sum' ? 0 : null;
    let min = Infinity, max = -Infinity, sum = 0;
    for (const v of nums) { if (v < min) min = v; if (v > max) max = v; sum += v; }
    switch (calc) {
      case 'min': return min;
      case 'max': return max;
      case 'sum': return sum;
      case 'mean': return sum / nums.length;
      case 'range': return max - min;
      case 'diff': return nums[nums.length - 1] - nums[0];
      case 'diffperc': return nums[0] === 0 ? null : ((nums[nums.length - 1] - nums[0]) / nums[0]) * 100;
      case 'logmin': {
        let m = null;
        for (const v of nums) if (v > 0 && (m === null || v < m)) m = v;
        return m;
      }
      case 'delta': {
        // Increases add up; a drop is a counter reset, after which the new value counts whole.
        let d = 0;
        for (let i = 1; i < nums.length; i++) d += nums[i] >= nums[i - 1] ? nums[i] - nums[i - 1] : nums[i];
        return d;
      }
      case 'step': {
        let s = null;
        for (let i = 1; i < nums.length; i++) {
          const st = nums[i] - nums[i - 1];
          if (s === null || st < s) s = st;
        }
        return s;
      }
      case 'variance': case 'stdDev': {
        const mean = sum / nums.length;
        let sq = 0;
        for (const v of nums) sq += (v - mean) * (v - mean);
        const variance = sq / nums.length;
        return calc === 'variance' ? variance : Math.sqrt(variance);
      }
      case 'median': {
        const s = nums.slice().sort((a, b) => a - b);
        const mid = Math.floor(s.length / 2);
        return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
      }
      default: {
        // p1 .. p99: Grafana's percentiles (nearest rank).
        const m = /^p(\d{1,2})$/.exec(calc);
        if (m) {
          const s = nums.slice().sort((a, b) => a - b);
          const idx = Math.max(0, Math.min(s.length - 1, Math.ceil((Number(m[1]) / 100) * s.length) - 1));
          return s[idx];
        }
        return present.length ? present[present.length - 1] : null;
      }
    }
  }
  function calcName(c) {
    if (CALC_NAMES[c]) return CALC_NAMES[c];
    const m = /^p(\d{1,2})$/.exec(c);
    return m ? m[1] + 'th %' : c;
  }

  // ------------------------------------------------------------ frames from Prometheus answers
  function field(name, type, values, extra) {
    return Object.assign({ name, type, values, labels: {}, config: {} }, extra || {});
  }
  function rows(fr) { return fr.fields.length ? fr.fields[0].values.length : 0; }
  function display(f) {
    const c = f.config || {};
    return c.displayName || c.displayNameFromDS || f.name;
  }

  // The frames Grafana's Prometheus data source gives a table: "Format as table" queries one
  // frame per query (Time, the labels in order, and "Value", or "Value #<refId>" where the panel
  // has several queries); other queries one frame per series (Time and a value field carrying
  // the series' labels and its legend as display name). `series`: {labels, times, values,
  // refId, format, name}, in the panel's query order.
  function fromSeries(series, queries) {
    const out = [];
    const byRef = new Map();
    for (const s of series) {
      if (s.format === 'table') {
        if (!byRef.has(s.refId)) { byRef.set(s.refId, []); out.push({ table: s.refId }); }
        byRef.get(s.refId).push(s);
      } else {
        out.push({ series: s });
      }
    }
    return out.map((o) => {
      if (o.series) {
        const s = o.series;
        return {
          name: s.name, refId: s.refId,
          fields: [
            field('Time', 'time', s.times.slice()),
            field('Value', 'number', s.values.slice(), { labels: Object.assign({}, s.labels), config: { displayNameFromDS: s.name } }),
          ],
        };
      }
      const list = byRef.get(o.table);
      const keys = new Set();
      for (const s of list) for (const k of Object.keys(s.labels)) keys.add(k);
      const names = Array.from(keys).sort();
      const t = [], vals = [], cols = names.map(() => []);
      for (const s of list) {
        for (let i = 0; i < s.times.length; i++) {
          t.push(s.times[i]);
          vals.push(s.values[i]);
          names.forEach((k, j) => cols[j].push(s.labels[k] !== undefined ? s.labels[k] : ''));
        }
      }
      const value = queries > 1 ? 'Value #' + o.table : 'Value';
      return {
        name: o.table, refId: o.table,
        fields: [field('Time', 'time', t)].concat(names.map((k, j) => field(k, 'string', cols[j])), [field(value, 'number', vals)]),
      };
    });
  }

  // ------------------------------------------------------------ helpers
  function regex(o) {
    if (typeof o !== 'string' || !o || o.length > 1000) return null;
    const m = /^\/(.*)\/([gimsuy]*)$/.exec(o);
    try { return m ? new RegExp(m[1], m[2].replace('g', '')) : new RegExp(o); } catch (e) { return null; }
  }
  function byName(fr, name) { return fr.fields.find((f) => display(f) === name) || fr.fields.find((f) => f.name === name); }
  function copyField(f, values) {
    return { name: f.name, type: f.type, values: values || f.values.slice(), labels: Object.assign({}, f.labels), config: Object.assign({}, f.config) };
  }
  function typeOf(values) {
    for (const v of values) {
      if (v === null || v === undefined) continue;
      return isNum(v) ? 'number' : typeof v === 'string' ? 'string' : 'other';
    }
    return 'number';
  }
  function cmp(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    if (isNum(a) && isNum(b)) return a - b;
    return String(a).localeCompare(String(b));
  }
  // A frame of the given fields (by name, in order) from rows of name -> value.
  function frameOf(name, fieldsLike, rowsList) {
    return {
      name, refId: '',
      fields: fieldsLike.map((f) => {
        const values = rowsList.map((r) => (r[f.key] === undefined ? null : r[f.key]));
        return copyField(f.field, values);
      }),
    };
  }
  // A binary or field operand: a field's display name, a number, or Grafana 10's
  // {matcher: {options: name}} / {fixed: "2"}.
  function operand(fr, o) {
    if (o === null || o === undefined || o === '') return null;
    if (typeof o === 'object') {
      if (o.fixed !== undefined) return operand(fr, String(o.fixed));
      if (o.matcher && typeof o.matcher.options === 'string') return operand(fr, o.matcher.options);
      return null;
    }
    const f = byName(fr, String(o));
    if (f) return f.values;
    const n = Number(o);
    return Number.isNaN(n) ? null : new Array(rows(fr)).fill(n);
  }
  const OPS = {
    '+': (a, b) => a + b, '-': (a, b) => a - b, '*': (a, b) => a * b, '/': (a, b) => a / b,
    '%': (a, b) => a % b, '^': (a, b) => Math.pow(a, b),
  };

  // ------------------------------------------------------------ the transformations
  const T = {};

  T.merge = (frames) => {
    const data = frames.filter((f) => f.fields.length);
    if (data.length <= 1) return frames;
    const order = [];
    const first = new Map();
    const inFrames = new Map();
    data.forEach((fr, i) => fr.fields.forEach((f) => {
      if (!first.has(f.name)) { first.set(f.name, f); order.push(f.name); }
      if (!inFrames.has(f.name)) inFrames.set(f.name, new Set());
      inFrames.get(f.name).add(i);
    }));
    const keys = order.filter((n) => inFrames.get(n).size === data.length);
    if (!keys.length) return frames;
    const byKey = new Map();
    const out = [];
    for (const fr of data) {
      const n = rows(fr);
      for (let r = 0; r < n; r++) {
        const row = {};
        for (const f of fr.fields) row[f.name] = f.values[r];
        const key = JSON.stringify(keys.map((k) => row[k]));
        const list = byKey.get(key);
        if (!list) { byKey.set(key, [row]); out.push(row); continue; }
        let merged = false;
        for (const ex of list) {
          let ok = true;
          for (const p of Object.keys(row)) {
            if (ex[p] !== undefined && ex[p] !== null && ex[p] !== row[p]) { ok = false; break; }
          }
          if (ok) { Object.assign(ex, row); merged = true; }
        }
        if (!merged) { list.push(row); out.push(row); }
        if (out.length > MAX_ROWS) break;
      }
    }
    const fr = frameOf('', order.map((n) => ({ key: n, field: first.get(n) })), out);
    for (const f of fr.fields) delete f.config.displayName;
    return [fr];
  };

  T.organize = (frames, o) => {
    const ex = o.excludeByName || {}, idx = o.indexByName || {}, ren = o.renameByName || {};
    const pos = (f) => (Number.isInteger(idx[display(f)]) ? idx[display(f)] : Number.isInteger(idx[f.name]) ? idx[f.name] : Number.MAX_SAFE_INTEGER);
    return frames.map((fr) => {
      let fields = fr.fields.filter((f) => !ex[display(f)] && !ex[f.name]);
      if (Object.keys(idx).length) fields = fields.map((f, i) => [f, i]).sort((a, b) => pos(a[0]) - pos(b[0]) || a[1] - b[1]).map((x) => x[0]);
      fields = fields.map((f) => {
        const to = ren[display(f)] !== undefined ? ren[display(f)] : ren[f.name];
        if (typeof to !== 'string' || !to) return f;
        const nf = copyField(f, f.values);
        nf.config.displayName = to;
        return nf;
      });
      return Object.assign({}, fr, { fields });
    });
  };

  function nameMatcher(spec) {
    if (!spec) return null;
    const names = Array.isArray(spec.names) ? spec.names : [];
    const re = regex(spec.pattern);
    if (!names.length && !re) return null;
    return (f) => names.includes(display(f)) || names.includes(f.name) || (!!re && (re.test(display(f)) || re.test(f.name)));
  }
  T.filterFieldsByName = (frames, o) => {
    const inc = nameMatcher(o.include), exc = nameMatcher(o.exclude);
    return frames.map((fr) => Object.assign({}, fr, {
      fields: fr.fields.filter((f) => (!inc || inc(f)) && (!exc || !exc(f))),
    }));
  };

  T.filterByRefId = (frames, o) => {
    if (!o.include) return frames;
    const re = /^\/.*\/[a-z]*$/.test(o.include) ? regex(o.include) : regex('^(' + o.include + ')$');
    return re ? frames.filter((fr) => re.test(fr.refId || '')) : frames;
  };

  T.renameByRegex = (frames, o) => {
    const re = regex(o.regex);
    if (!re || typeof o.renamePattern !== 'string') return frames;
    return frames.map((fr) => Object.assign({}, fr, {
      fields: fr.fields.map((f) => {
        const d = display(f);
        if (!re.test(d)) return f;
        const nf = copyField(f, f.values);
        nf.config.displayName = d.replace(re, o.renamePattern);
        return nf;
      }),
    }));
  };

  T.calculateField = (frames, o) => {
    const mode = o.mode || 'reduceRow';
    // Several time series are first joined on time, so that a row holds each one's value then.
    if (o.timeSeries !== false && frames.length > 1 && frames.every((fr) => fr.fields.some((f) => f.type === 'time'))) {
      frames = T.joinByField(frames, {});
    }
    return frames.map((fr) => {
      const n = rows(fr);
      let values, alias;
      if (mode === 'binary') {
        const b = o.binary || {};
        const op = OPS[b.operator || '+'];
        const l = operand(fr, b.left), r = operand(fr, b.right);
        if (!op || !l || !r) return fr;
        values = l.map((a, i) => (isNum(a) && isNum(r[i]) ? op(a, r[i]) : null));
        const side = (x) => (x && typeof x === 'object' ? (x.fixed !== undefined ? x.fixed : (x.matcher || {}).options) : x);
        alias = side(b.left) + ' ' + (b.operator || '+') + ' ' + side(b.right);
      } else if (mode === 'index') {
        values = Array.from({ length: n }, (_, i) => i);
        alias = 'Row';
      } else if (mode === 'reduceRow') {
        const red = o.reduce || {};
        const calc = red.reducer || 'sum';
        const inc = Array.isArray(red.include) && red.include.length ? red.include : null;
        const use = fr.fields.filter((f) => f.type === 'number' && (!inc || inc.includes(display(f)) || inc.includes(f.name)));
        if (!use.length) return fr;
        values = Array.from({ length: n }, (_, i) => reduce(calc, use.map((f) => f.values[i])));
        alias = calcName(calc);
      } else {
        return fr;
      }
      const nf = field(o.alias || alias, 'number', values);
      if (o.replaceFields) {
        const t = fr.fields.find((f) => f.type === 'time');
        return Object.assign({}, fr, { fields: t ? [t, nf] : [nf] });
      }
      return Object.assign({}, fr, { fields: fr.fields.concat([nf]) });
    });
  };

  T.groupBy = (frames, o) => {
    const conf = o.fields || {};
    const confOf = (f) => conf[display(f)] || conf[f.name];
    return frames.map((fr) => {
      const groupFields = fr.fields.filter((f) => (confOf(f) || {}).operation === 'groupby');
      if (!groupFields.length) return fr;
      const groups = new Map();
      const order = [];
      const n = rows(fr);
      for (let r = 0; r < n; r++) {
        const key = JSON.stringify(groupFields.map((f) => f.values[r]));
        if (!groups.has(key)) { groups.set(key, []); order.push(key); }
        groups.get(key).push(r);
      }
      const fields = groupFields.map((f) => copyField(f, order.map((k) => f.values[groups.get(k)[0]])));
      for (const f of fr.fields) {
        const c = confOf(f);
        if (!c || c.operation !== 'aggregate') continue;
        for (const calc of c.aggregations || []) {
          const values = order.map((k) => reduce(calc, groups.get(k).map((r) => f.values[r])));
          const keepType = ['first', 'last', 'firstNotNull', 'lastNotNull'].includes(calc);
          fields.push(field(display(f) + ' (' + calc + ')', keepType ? f.type : typeOf(values), values));
        }
      }
      return Object.assign({}, fr, { fields });
    });
  };

  T.reduce = (frames, o) => {
    const calcs = Array.isArray(o.reducers) && o.reducers.length ? o.reducers : ['max'];
    if (o.mode === 'reduceFields') {
      return frames.map((fr) => Object.assign({}, fr, {
        fields: fr.fields.filter((f) => o.includeTimeField || f.type !== 'time').map((f) => {
          const nf = copyField(f, [reduce(calcs[0], f.values)]);
          if (f.type === 'time') nf.type = 'time';
          return nf;
        }),
      }));
    }
    // Series to rows: a row per field, a column per calculation.
    const out = [];
    const labelKeys = [];
    for (const fr of frames) {
      for (const f of fr.fields) {
        if (f.type !== 'number') continue;
        const row = { Field: display(f) };
        if (o.labelsToFields) {
          for (const [k, v] of Object.entries(f.labels || {})) {
            if (!labelKeys.includes(k)) labelKeys.push(k);
            row['label:' + k] = v;
          }
          row.Field = f.name;
        }
        for (const c of calcs) row['calc:' + c] = reduce(c, f.values);
        out.push(row);
      }
    }
    const cols = [{ key: 'Field', field: field('Field', 'string', []) }]
      .concat(labelKeys.map((k) => ({ key: 'label:' + k, field: field(k, 'string', []) })))
      .concat(calcs.map((c) => ({ key: 'calc:' + c, field: field(calcName(c), 'number', []) })));
    const fr = frameOf('', cols, out);
    for (const f of fr.fields) if (f.type === 'number') f.type = typeOf(f.values);
    return [fr];
  };

  T.seriesToRows = (frames) => {
    if (frames.length <= 1) return frames;
    const out = [];
    for (const fr of frames) {
      const t = fr.fields.find((f) => f.type === 'time');
      if (!t) continue;
      for (const f of fr.fields) {
        if (f.type !== 'number') continue;
        for (let i = 0; i < f.values.length; i++) out.push({ Time: t.values[i], Metric: display(f), Value: f.values[i] });
      }
    }
    out.sort((a, b) => cmp(b.Time, a.Time));
    return [frameOf('', [
      { key: 'Time', field: field('Time', 'time', []) },
      { key: 'Metric', field: field('Metric', 'string', []) },
      { key: 'Value', field: field('Value', 'number', []) },
    ], out.slice(0, MAX_ROWS))];
  };

  // Join by field (and its older name, series to columns): the frames side by side on one
  // field's values, outer (every value of any frame) or inner (values every frame has).
  T.joinByField = (frames, o) => {
    if (frames.length <= 1 && !o.byField) return frames;
    const keyOf = (fr) => (o.byField ? byName(fr, o.byField) : fr.fields.find((f) => f.type === 'time'));
    const usable = frames.filter((fr) => keyOf(fr));
    if (!usable.length) return frames;
    const k0 = keyOf(usable[0]);
    const keyField = copyField(k0, []);
    delete keyField.config.displayName;
    const cols = [];
    const rowsByKey = new Map();
    const seen = [];
    usable.forEach((fr, fi) => {
      const kf = keyOf(fr);
      const others = fr.fields.filter((f) => f !== kf);
      for (const f of others) {
        const nf = copyField(f, []);
        // Same-named fields from several frames keep their display names apart.
        nf.config.displayName = display(f);
        cols.push({ fi, f, nf });
      }
      for (let r = 0; r < kf.values.length; r++) {
        const key = kf.values[r];
        const id = typeof key + ':' + String(key);
        if (!rowsByKey.has(id)) { rowsByKey.set(id, { key, at: new Map() }); seen.push(id); }
        const entry = rowsByKey.get(id);
        if (!entry.at.has(fi)) entry.at.set(fi, r);
      }
    });
    let ids = seen;
    if (o.mode === 'inner') ids = ids.filter((id) => rowsByKey.get(id).at.size === usable.length);
    if (keyField.type === 'time' || keyField.type === 'number') ids = ids.slice().sort((a, b) => cmp(rowsByKey.get(a).key, rowsByKey.get(b).key));
    ids = ids.slice(0, MAX_ROWS);
    keyField.values = ids.map((id) => rowsByKey.get(id).key);
    for (const c of cols) {
      c.nf.values = ids.map((id) => {
        const r = rowsByKey.get(id).at.get(c.fi);
        return r === undefined ? null : c.f.values[r];
      });
    }
    return [{ name: '', refId: '', fields: [keyField].concat(cols.map((c) => c.nf)) }];
  };
  T.seriesToColumns = T.joinByField;

  T.labelsToFields = (frames, o) => {
    const keep = Array.isArray(o.keepLabels) && o.keepLabels.length ? o.keepLabels : null;
    if (o.mode === 'rows') {
      const out = [];
      for (const fr of frames) {
        for (const f of fr.fields) {
          const ls = Object.entries(f.labels || {}).filter(([k]) => !keep || keep.includes(k));
          if (!ls.length) continue;
          out.push({ name: display(f), refId: fr.refId, fields: [field('label', 'string', ls.map((x) => x[0])), field('value', 'string', ls.map((x) => x[1]))] });
        }
      }
      return out.length ? out : frames;
    }
    const perFrame = frames.map((fr) => {
      const fields = [];
      const labelFields = [];
      for (const f of fr.fields) {
        const ls = Object.entries(f.labels || {}).filter(([k]) => k !== '__name__' && (!keep || keep.includes(k)));
        if (!ls.length) { fields.push(f); continue; }
        const nf = copyField(f, f.values);
        nf.labels = {};
        delete nf.config.displayNameFromDS;
        for (const [k, v] of ls) {
          if (o.valueLabel && k === o.valueLabel) { nf.name = v; continue; }
          if (!labelFields.some((x) => x.name === k)) labelFields.push(field(k, 'string', new Array(f.values.length).fill(v)));
        }
        if (!o.valueLabel && f.labels.__name__) nf.name = f.labels.__name__;
        fields.push(nf);
      }
      const t = fields.filter((f) => f.type === 'time');
      return Object.assign({}, fr, { fields: t.concat(labelFields, fields.filter((f) => f.type !== 'time')) });
    });
    return T.merge(perFrame);
  };

  T.sortBy = (frames, o) => {
    const s = (o.sort || [])[0];
    if (!s || !s.field) return frames;
    return frames.map((fr) => {
      const f = byName(fr, s.field);
      if (!f) return fr;
      const idx = f.values.map((_, i) => i).sort((a, b) => cmp(f.values[a], f.values[b]) || a - b);
      if (s.desc) idx.reverse();
      return Object.assign({}, fr, { fields: fr.fields.map((x) => copyField(x, idx.map((i) => x.values[i]))) });
    });
  };

  T.limit = (frames, o) => {
    const n = Number.isInteger(o.limitField) ? o.limitField : parseInt(o.limitField, 10);
    const lim = Number.isNaN(n) ? 10 : Math.max(0, n);
    return frames.map((fr) => Object.assign({}, fr, { fields: fr.fields.map((f) => copyField(f, f.values.slice(0, lim))) }));
  };

  T.concatenate = (frames, o) => {
    if (frames.length <= 1) return frames;
    const n = Math.min(MAX_ROWS, Math.max(0, ...frames.map(rows)));
    const fields = [];
    for (const fr of frames) {
      for (const f of fr.fields) {
        const values = f.values.slice(0, n);
        while (values.length < n) values.push(null);
        const nf = copyField(f, values);
        nf.config.displayName = display(f);
        fields.push(nf);
      }
    }
    return [{ name: o.frameName || '', refId: '', fields }];
  };

  const FILTERS = {
    greater: (v, p) => isNum(v) && v > Number(p.value),
    greaterOrEqual: (v, p) => isNum(v) && v >= Number(p.value),
    lower: (v, p) => isNum(v) && v < Number(p.value),
    lowerOrEqual: (v, p) => isNum(v) && v <= Number(p.value),
    equal: (v, p) => v == p.value, // eslint-disable-line eqeqeq
    notEqual: (v, p) => v != p.value, // eslint-disable-line eqeqeq
    range: (v, p) => isNum(v) && v >= Number(p.from) && v <= Number(p.to),
    isNull: (v) => v === null || v === undefined,
    isNotNull: (v) => v !== null && v !== undefined,
    regex: (v, p) => { const re = regex(p.value); return !!re && v !== null && v !== undefined && re.test(String(v)); },
  };
  T.filterByValue = (frames, o) => {
    const conds = (o.filters || []).filter((c) => c && c.config && FILTERS[c.config.id] && typeof c.fieldName === 'string');
    if (!conds.length) return frames;
    const include = o.type !== 'exclude';
    const all = o.match !== 'any';
    return frames.map((fr) => {
      const tests = conds.map((c) => ({ f: byName(fr, c.fieldName), test: FILTERS[c.config.id], p: c.config.options || {} })).filter((t) => t.f);
      if (!tests.length) return fr;
      const keepRows = [];
      for (let r = 0; r < rows(fr); r++) {
        const hits = tests.map((t) => t.test(t.f.values[r], t.p));
        const hit = all ? hits.every(Boolean) : hits.some(Boolean);
        if (hit === include) keepRows.push(r);
      }
      return Object.assign({}, fr, { fields: fr.fields.map((f) => copyField(f, keepRows.map((r) => f.values[r]))) });
    });
  };

  T.convertFieldType = (frames, o) => {
    const convs = (o.conversions || []).filter((c) => c && c.targetField && ['number', 'string', 'boolean'].includes(c.destinationType));
    if (!convs.length) return frames;
    return frames.map((fr) => Object.assign({}, fr, {
      fields: fr.fields.map((f) => {
        const c = convs.find((x) => x.targetField === display(f) || x.targetField === f.name);
        if (!c) return f;
        const to = c.destinationType;
        const values = f.values.map((v) => {
          if (v === null || v === undefined) return null;
          if (to === 'number') { const n = Number(v); return Number.isNaN(n) ? null : n; }
          if (to === 'boolean') return v === true || v === 'true' || v === 1 || v === '1';
          return String(v);
        });
        const nf = copyField(f, values);
        nf.type = to === 'number' ? 'number' : to === 'string' ? 'string' : 'other';
        return nf;
      }),
    }));
  };

  // Frames back to the series a chart, stat or gauge draws: every number field, over its
  // frame's time field (or at `at`, in seconds, where the frame has none).
  function toSeries(frames, at) {
    const out = [];
    for (const fr of frames) {
      const t = fr.fields.find((f) => f.type === 'time');
      for (const f of fr.fields) {
        if (f.type !== 'number') continue;
        out.push({
          labels: Object.assign({}, f.labels), refId: fr.refId, name: display(f),
          times: t ? t.values.slice() : f.values.map(() => at), values: f.values.slice(),
        });
      }
    }
    return out;
  }

  // The panel's transformations in order. A transformation may carry `filter` (apply it to
  // the frames of one query only) and `disabled`. Those Sightline does not apply are named in
  // `skipped` and leave the data as it was.
  function transform(frames, list) {
    const skipped = [];
    let data = frames;
    for (const t of Array.isArray(list) ? list : []) {
      if (!t || typeof t.id !== 'string' || t.disabled) continue;
      const fn = Object.prototype.hasOwnProperty.call(T, t.id) ? T[t.id] : null;
      if (!fn) { skipped.push(t.id); continue; }
      const opts = t.options && typeof t.options === 'object' ? t.options : {};
      const f = t.filter && t.filter.id === 'byRefId' && typeof t.filter.options === 'string' ? t.filter.options : null;
      // Options are the dashboard's, untrusted: one that breaks a transformation leaves the
      // data as it was and is named.
      try {
        if (f !== null) {
          const re = regex('^(' + f + ')$');
          const mine = data.filter((fr) => re && re.test(fr.refId || ''));
          const rest = data.filter((fr) => !mine.includes(fr));
          data = fn(mine, opts).concat(rest);
        } else {
          data = fn(data, opts);
        }
      } catch (e) {
        skipped.push(t.id + ' (' + String(e.message || e) + ')');
      }
    }
    return { frames: data, skipped };
  }

  root.SightlineFrames = { fromSeries, toSeries, transform, reduce, calcName, display, rows };
  if (typeof module !== 'undefined' && module.exports) module.exports = root.SightlineFrames;
})(typeof self !== 'undefined' ? self : globalThis);
