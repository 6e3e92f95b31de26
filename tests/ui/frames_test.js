// Table transformations of the Dashboards page (assets/frames.js) against the worked examples
// of Grafana's "Transform data" documentation (docs/sources/panels-visualizations/
// query-transform-data/transform-data/index.md, grafana/grafana commit
// 00aa9d72f12bbd49853f3772161f57191044caa0, AGPL-3.0: the input and output tables are Grafana's,
// the code under test is ours), plus the transformation chain of kube-prometheus's
// "Node Exporter / Nodes" disk space table. Where the documentation lists rows newest first
// but computes "last" as the newest, the input is given oldest first (as the data source sends
// it); one documented value that contradicts its own input (series to rows: Humidity at
// 11:34:20 is 24 in the input, 22 in the output) is taken from the input. Rows are compared by
// column name, not column order. Run by `cargo test --test dashboard_units`.
'use strict';
const F = require('../../assets/frames.js');

let passed = 0;
let failed = 0;
function eq(name, got, want) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g === w) { passed++; return; }
  failed++;
  console.log('FAIL ' + name + '\n  got  ' + g + '\n  want ' + w);
}
function frame(name, cols, refId) {
  return {
    name, refId: refId || name,
    fields: Object.entries(cols).map(([n, values]) => ({
      name: n, values, labels: {}, config: {},
      type: n === 'Time' ? 'time' : typeof values.find((v) => v !== null) === 'number' ? 'number' : 'string',
    })),
  };
}
// Rows as objects keyed by display name, for order-free comparison of columns.
function rowsOf(fr) {
  const out = [];
  for (let i = 0; i < F.rows(fr); i++) {
    const r = {};
    for (const f of fr.fields) r[F.display(f)] = f.values[i] === undefined ? null : f.values[i];
    out.push(r);
  }
  return out;
}
function sortKeys(r) { return Object.fromEntries(Object.keys(r).sort().map((k) => [k, r[k]])); }
function rowsEq(name, fr, want) { eq(name, rowsOf(fr).map(sortKeys), want.map(sortKeys)); }
function run(frames, list) { return F.transform(frames, list).frames; }

// Times as the documentation writes them (seconds since midnight would do as well).
const T = (s) => Date.parse('2020-07-07T' + s + 'Z') / 1000;

// ---- Merge
{
  const a = frame('A', { Time: [T('11:34:20'), T('11:24:20')], Job: ['node', 'postgre'], Uptime: [25260122, 123001233] });
  const b = frame('B', { Time: [T('11:34:20'), T('11:24:20')], Job: ['node', 'postgre'], Errors: [15, 5] });
  const out = run([a, b], [{ id: 'merge', options: {} }]);
  eq('merge: one frame', out.length, 1);
  rowsEq('merge', out[0], [
    { Time: T('11:34:20'), Job: 'node', Errors: 15, Uptime: 25260122 },
    { Time: T('11:24:20'), Job: 'postgre', Errors: 5, Uptime: 123001233 },
  ]);
}

// ---- Group by
{
  const data = [
    ['09:23:07', 'server 1', 86, 'OK'], ['09:25:05', 'server 2', 88, 'OK'], ['09:28:06', 'server 1', 80, 'OK'],
    ['09:30:05', 'server 2', 88, 'OK'], ['09:30:57', 'server 3', 62, 'Rebooting'], ['10:31:22', 'server 3', 55, 'OK'],
    ['10:32:20', 'server 2', 90, 'Overload'], ['11:34:20', 'server 3', 62, 'OK'], ['11:34:20', 'server 1', 80, 'Shutdown'],
  ];
  const fr = frame('A', {
    Time: data.map((r) => T(r[0])), 'Server ID': data.map((r) => r[1]),
    'CPU Temperature': data.map((r) => r[2]), 'Server Status': data.map((r) => r[3]),
  });
  const mean = run([fr], [{ id: 'groupBy', options: { fields: {
    'Server ID': { operation: 'groupby', aggregations: [] },
    'CPU Temperature': { operation: 'aggregate', aggregations: ['mean'] },
  } } }])[0];
  // The documentation shows the means cut to one decimal (88.6 for 88.67).
  eq('groupBy mean', rowsOf(mean).map((r) => [r['Server ID'], Math.floor(r['CPU Temperature (mean)'] * 10) / 10]),
    [['server 1', 82], ['server 2', 88.6], ['server 3', 59.6]]);
  const more = run([fr], [{ id: 'groupBy', options: { fields: {
    'Server ID': { operation: 'groupby', aggregations: [] },
    'CPU Temperature': { operation: 'aggregate', aggregations: ['mean', 'last'] },
    Time: { operation: 'aggregate', aggregations: ['last'] },
    'Server Status': { operation: 'aggregate', aggregations: ['last'] },
  } } }])[0];
  eq('groupBy last', rowsOf(more).map((r) => [r['Server ID'], r['CPU Temperature (last)'], r['Time (last)'], r['Server Status (last)']]), [
    ['server 1', 80, T('11:34:20'), 'Shutdown'],
    ['server 2', 90, T('10:32:20'), 'Overload'],
    ['server 3', 62, T('11:34:20'), 'OK'],
  ]);
  eq('groupBy keeps the time type of last(Time)', more.fields.find((f) => f.name === 'Time (last)').type, 'time');
}

// ---- Reduce
{
  const a = frame('A', { Time: [T('11:34:20'), T('11:24:20')], Temp: [12.3, 15.4], Uptime: [256122, 1230233] });
  const b = frame('B', { Time: [T('11:34:20'), T('11:24:20')], AQI: [6.5, 3.2], Errors: [15, 5] });
  const rows = run([a, b], [{ id: 'reduce', options: { reducers: ['first', 'last'] } }]);
  eq('reduce series to rows: columns', rows[0].fields.map((f) => f.name), ['Field', 'First', 'Last']);
  rowsEq('reduce series to rows', rows[0], [
    { Field: 'Temp', First: 12.3, Last: 15.4 }, { Field: 'Uptime', First: 256122, Last: 1230233 },
    { Field: 'AQI', First: 6.5, Last: 3.2 }, { Field: 'Errors', First: 15, Last: 5 },
  ]);
  const fields = run([a, b], [{ id: 'reduce', options: { mode: 'reduceFields', reducers: ['last'] } }]);
  eq('reduce fields: two frames', fields.length, 2);
  rowsEq('reduce fields A', fields[0], [{ Temp: 15.4, Uptime: 1230233 }]);
  rowsEq('reduce fields B', fields[1], [{ AQI: 3.2, Errors: 5 }]);
}

// ---- Concatenate
{
  const a = frame('A', { Temp: [15.4], Uptime: [1230233] });
  const b = frame('B', { AQI: [3.2], Errors: [5] });
  const out = run([a, b], [{ id: 'concatenate', options: {} }]);
  eq('concatenate: columns', out[0].fields.map(F.display), ['Temp', 'Uptime', 'AQI', 'Errors']);
  rowsEq('concatenate', out[0], [{ Temp: 15.4, Uptime: 1230233, AQI: 3.2, Errors: 5 }]);
}

// ---- Join by field, inner and outer
{
  const a = () => frame('A', { Time: [T('11:34:20'), T('11:24:20'), T('11:14:20')], Job: ['node', 'postgre', 'postgre'], Uptime: [25260122, 123001233, 345001233] });
  const b = () => frame('B', { Time: [T('11:34:20'), T('11:24:20'), T('11:04:20')], Server: ['server 1', 'server 2', 'server 3'], Errors: [15, 5, 10] });
  const byTime = (rows) => rows.slice().sort((x, y) => x.Time - y.Time);
  const inner = run([a(), b()], [{ id: 'joinByField', options: { byField: 'Time', mode: 'inner' } }])[0];
  eq('join inner', byTime(rowsOf(inner)).map(sortKeys), byTime([
    { Time: T('11:34:20'), Job: 'node', Uptime: 25260122, Server: 'server 1', Errors: 15 },
    { Time: T('11:24:20'), Job: 'postgre', Uptime: 123001233, Server: 'server 2', Errors: 5 },
  ]).map(sortKeys));
  const outer = run([a(), b()], [{ id: 'joinByField', options: { byField: 'Time', mode: 'outer' } }])[0];
  eq('join outer', byTime(rowsOf(outer)).map(sortKeys), byTime([
    { Time: T('11:04:20'), Job: null, Uptime: null, Server: 'server 3', Errors: 10 },
    { Time: T('11:14:20'), Job: 'postgre', Uptime: 345001233, Server: null, Errors: null },
    { Time: T('11:34:20'), Job: 'node', Uptime: 25260122, Server: 'server 1', Errors: 15 },
    { Time: T('11:24:20'), Job: 'postgre', Uptime: 123001233, Server: 'server 2', Errors: 5 },
  ]).map(sortKeys));
  // The older name, series to columns, joins on the time field.
  const cols = run([a(), b()], [{ id: 'seriesToColumns', options: {} }])[0];
  eq('series to columns: rows', F.rows(cols), 4);
}

// ---- Labels to fields
{
  const series = (labels, v) => ({
    name: 'A', refId: 'A',
    fields: [
      { name: 'Time', type: 'time', values: [T('11:34:20')], labels: {}, config: {} },
      { name: 'Value', type: 'number', values: [v], labels, config: {} },
    ],
  });
  const cols = run([series({ Server: 'Server A', Datacenter: 'EU' }, 1), series({ Server: 'Server B', Datacenter: 'EU' }, 2)],
    [{ id: 'labelsToFields', options: {} }]);
  eq('labels to fields: one table', cols.length, 1);
  rowsEq('labels to fields: columns', cols[0], [
    { Time: T('11:34:20'), Server: 'Server A', Datacenter: 'EU', Value: 1 },
    { Time: T('11:34:20'), Server: 'Server B', Datacenter: 'EU', Value: 2 },
  ]);
  const byServer = run([series({ Server: 'Server A', Datacenter: 'EU' }, 1), series({ Server: 'Server B', Datacenter: 'EU' }, 2)],
    [{ id: 'labelsToFields', options: { valueLabel: 'Server' } }]);
  rowsEq('labels to fields: value field name', byServer[0], [{ Time: T('11:34:20'), Datacenter: 'EU', 'Server A': 1, 'Server B': 2 }]);
  const apart = run([series({ Server: 'ServerA' }, 10), series({ Datacenter: 'EU' }, 20)], [{ id: 'labelsToFields', options: {} }]);
  rowsEq('labels to fields: merging', apart[0], [
    { Time: T('11:34:20'), Server: 'ServerA', Value: 10, Datacenter: null },
    { Time: T('11:34:20'), Server: null, Value: 20, Datacenter: 'EU' },
  ]);
  const rowsMode = run([series({ Server: 'Server A', Datacenter: 'EU' }, 1)], [{ id: 'labelsToFields', options: { mode: 'rows' } }]);
  rowsEq('labels to fields: rows', rowsMode[0], [{ label: 'Server', value: 'Server A' }, { label: 'Datacenter', value: 'EU' }]);
}

// ---- Series to rows, limit
{
  const a = frame('A', { Time: [T('11:34:20'), T('10:31:22'), T('09:30:05')], Temperature: [25, 22, 19] });
  const b = frame('B', { Time: [T('11:34:20'), T('10:32:20'), T('09:30:57')], Humidity: [24, 29, 33] });
  const want = [
    { Time: T('11:34:20'), Metric: 'Temperature', Value: 25 },
    { Time: T('11:34:20'), Metric: 'Humidity', Value: 24 },
    { Time: T('10:32:20'), Metric: 'Humidity', Value: 29 },
    { Time: T('10:31:22'), Metric: 'Temperature', Value: 22 },
    { Time: T('09:30:57'), Metric: 'Humidity', Value: 33 },
    { Time: T('09:30:05'), Metric: 'Temperature', Value: 19 },
  ];
  const out = run([a, b], [{ id: 'seriesToRows', options: {} }]);
  eq('series to rows: columns', out[0].fields.map((f) => f.name), ['Time', 'Metric', 'Value']);
  rowsEq('series to rows', out[0], want);
  rowsEq('limit 3', run([a, b], [{ id: 'seriesToRows', options: {} }, { id: 'limit', options: { limitField: 3 } }])[0], want.slice(0, 3));
}

// ---- Filter data by values
{
  const data = [['11:34:23', 32, 101], ['11:34:22', 28, 125], ['11:34:21', 26, 110], ['11:34:20', 23, 98],
    ['10:32:24', 31, 95], ['10:31:22', 20, 85], ['09:30:57', 19, 101]];
  const fr = () => frame('A', { Time: data.map((r) => T(r[0])), Temperature: data.map((r) => r[1]), Altitude: data.map((r) => r[2]) });
  const below30 = { fieldName: 'Temperature', config: { id: 'lower', options: { value: 30 } } };
  const above100 = { fieldName: 'Altitude', config: { id: 'greater', options: { value: 100 } } };
  const temps = (list) => rowsOf(run([fr()], list)[0]).map((r) => r.Temperature);
  eq('filter by value: include lower 30', temps([{ id: 'filterByValue', options: { type: 'include', match: 'all', filters: [below30] } }]), [28, 26, 23, 20, 19]);
  eq('filter by value: match all', temps([{ id: 'filterByValue', options: { type: 'include', match: 'all', filters: [below30, above100] } }]), [28, 26, 19]);
  eq('filter by value: match any', temps([{ id: 'filterByValue', options: { type: 'include', match: 'any', filters: [below30, above100] } }]), [32, 28, 26, 23, 20, 19]);
  eq('filter by value: exclude', temps([{ id: 'filterByValue', options: { type: 'exclude', match: 'all', filters: [below30] } }]), [32, 31]);
}

// ---- kube-prometheus "Node Exporter / Nodes": Disk Space Usage (format table, two queries)
{
  const series = [
    { labels: { mountpoint: '/' }, times: [100], values: [1000], refId: 'A', format: 'table', name: '' },
    { labels: { mountpoint: '/boot' }, times: [100], values: [200], refId: 'A', format: 'table', name: '' },
    { labels: { mountpoint: '/' }, times: [100], values: [250], refId: 'B', format: 'table', name: '' },
    { labels: { mountpoint: '/boot' }, times: [100], values: [150], refId: 'B', format: 'table', name: '' },
  ];
  const frames = F.fromSeries(series, 2);
  eq('format table: one frame per query', frames.map((f) => f.fields.map((x) => x.name)), [['Time', 'mountpoint', 'Value #A'], ['Time', 'mountpoint', 'Value #B']]);
  eq('format table, one query: "Value"', F.fromSeries(series.slice(0, 2), 1)[0].fields.map((x) => x.name), ['Time', 'mountpoint', 'Value']);
  const list = [
    { id: 'groupBy', options: { fields: {
      'Value #A': { aggregations: ['lastNotNull'], operation: 'aggregate' },
      'Value #B': { aggregations: ['lastNotNull'], operation: 'aggregate' },
      mountpoint: { aggregations: [], operation: 'groupby' } } } },
    { id: 'merge' },
    { id: 'calculateField', options: { alias: 'Used', mode: 'binary', binary: { left: 'Value #A (lastNotNull)', operator: '-', right: 'Value #B (lastNotNull)' } } },
    { id: 'calculateField', options: { alias: 'Used, %', mode: 'binary', binary: { left: 'Used', operator: '/', right: 'Value #A (lastNotNull)' } } },
    { id: 'organize', options: { excludeByName: {}, indexByName: {}, renameByName: { 'Value #A (lastNotNull)': 'Size', 'Value #B (lastNotNull)': 'Available', mountpoint: 'Mounted on' } } },
    { id: 'sortBy', options: { fields: {}, sort: [{ field: 'Mounted on', desc: true }] } },
  ];
  const r = F.transform(frames, list);
  eq('disk table: nothing skipped', r.skipped, []);
  eq('disk table: columns', r.frames[0].fields.map(F.display), ['Mounted on', 'Size', 'Available', 'Used', 'Used, %']);
  eq('disk table: rows', rowsOf(r.frames[0]).map((x) => Object.values(x)), [['/boot', 200, 150, 50, 0.25], ['/', 1000, 250, 750, 0.75]]);
}

// ---- Add field from calculation, organize, filter by name, rename by regex, skipped ones
{
  const fr = () => frame('A', { Time: [1, 2], A: [2, 3], B: [10, 20], C: [1, null] });
  const bin = run([fr()], [{ id: 'calculateField', options: { mode: 'binary', binary: { left: 'A', operator: '*', right: 'B' } } }])[0];
  eq('binary: default alias and values', [F.display(bin.fields[4]), bin.fields[4].values], ['A * B', [20, 60]]);
  const fixed = run([fr()], [{ id: 'calculateField', options: { mode: 'binary', binary: { left: { matcher: { id: 'byName', options: 'B' } }, operator: '/', right: { fixed: '2' } }, alias: 'half' } }])[0];
  eq('binary with Grafana 10 operands', fixed.fields.find((f) => f.name === 'half').values, [5, 10]);
  const total = run([fr()], [{ id: 'calculateField', options: { mode: 'reduceRow', reduce: { reducer: 'sum' }, replaceFields: true } }])[0];
  eq('reduce row: Total, replacing the rest', [total.fields.map(F.display), total.fields[1].values], [['Time', 'Total'], [13, 23]]);
  const idx = run([fr()], [{ id: 'calculateField', options: { mode: 'index' } }])[0];
  eq('index', idx.fields.find((f) => f.name === 'Row').values, [0, 1]);
  const org = run([fr()], [{ id: 'organize', options: { excludeByName: { C: true }, indexByName: { B: 0, Time: 1, A: 2 }, renameByName: { B: 'Bee' } } }])[0];
  eq('organize', org.fields.map(F.display), ['Bee', 'Time', 'A']);
  const only = run([fr()], [{ id: 'filterFieldsByName', options: { include: { names: ['Time', 'B'] } } }])[0];
  eq('filter by name: include names', only.fields.map((f) => f.name), ['Time', 'B']);
  const notRe = run([fr()], [{ id: 'filterFieldsByName', options: { exclude: { pattern: '^[AB]$' } } }])[0];
  eq('filter by name: exclude pattern', notRe.fields.map((f) => f.name), ['Time', 'C']);
  const host = { name: 'x', refId: 'A', fields: [{ name: 'web-01.example.com', type: 'number', values: [1], labels: {}, config: {} }] };
  eq('rename by regex', F.display(run([host], [{ id: 'renameByRegex', options: { regex: '([^\\.]+)\\..+', renamePattern: '$1' } }])[0].fields[0]), 'web-01');
  const sorted = run([fr()], [{ id: 'sortBy', options: { sort: [{ field: 'B', desc: true }] } }])[0];
  eq('sort by, descending', sorted.fields.find((f) => f.name === 'A').values, [3, 2]);
  const refs = run([frame('A', { V: [1] }, 'A'), frame('B', { V: [2] }, 'B')], [{ id: 'filterByRefId', options: { include: 'B' } }]);
  eq('filter by query', refs.map((f) => f.refId), ['B']);
  const scoped = run([frame('A', { V: [1] }, 'A'), frame('B', { V: [2] }, 'B')], [{ id: 'organize', filter: { id: 'byRefId', options: 'A' }, options: { renameByName: { V: 'W' } } }]);
  eq('a transformation scoped to one query', scoped.map((f) => F.display(f.fields[0])), ['W', 'V']);
  const r = F.transform([fr()], [{ id: 'partitionByValues', options: {} }, { id: 'limit', disabled: true, options: { limitField: 1 } }]);
  eq('unknown transformations are named and leave the data; disabled ones do nothing', [r.skipped, F.rows(r.frames[0])], [['partitionByValues'], 2]);
  const bad = F.transform([fr()], [{ id: 'filterByValue', options: { filters: { not: 'a list' } } }, { id: 'groupBy', options: { fields: 'x' } },
    { id: 'calculateField', options: { mode: 'binary', binary: 7 } }, { id: 'sortBy', options: { sort: 'A' } }]);
  eq('malformed options leave the data as it was, and a transformation that throws is named',
    [bad.skipped.map((x) => x.split(' ')[0]), F.rows(bad.frames[0]), bad.frames[0].fields.length], [['filterByValue'], 2, 4]);
  const conv = run([frame('A', { S: ['1.5', 'x'] })], [{ id: 'convertFieldType', options: { conversions: [{ targetField: 'S', destinationType: 'number' }] } }])[0];
  eq('convert field type to number', conv.fields[0].values, [1.5, null]);
}

// ---- Time series through a transformation and back (k8s-views-global's "Cluster CPU
// Utilization": the mean of each row, the rest replaced)
{
  const series = [
    { labels: { instance: 'a' }, times: [10, 20, 30], values: [1, 2, 3], refId: 'A', format: 'time_series', name: 'a' },
    { labels: { instance: 'b' }, times: [10, 20, 40], values: [3, 4, 5], refId: 'A', format: 'time_series', name: 'b' },
  ];
  const frames = F.fromSeries(series, 1);
  eq('time series: a frame each, value named by its legend', frames.map((f) => [f.fields.map((x) => x.name), F.display(f.fields[1])]), [[['Time', 'Value'], 'a'], [['Time', 'Value'], 'b']]);
  const r = F.transform(frames, [{ id: 'calculateField', options: { alias: 'CPU usage in %', mode: 'reduceRow', reduce: { reducer: 'mean' }, replaceFields: true } }]);
  eq('time series joined on time, then the mean of each row', F.toSeries(r.frames, 0).map((s) => [s.name, s.times, s.values]),
    [['CPU usage in %', [10, 20, 30, 40], [2, 3, 3, 5]]]);
}

// ---- Calculations, with Grafana's names
{
  const v = [3, null, 1, 4, 1, 5];
  eq('reduce calcs', ['min', 'max', 'mean', 'sum', 'count', 'last', 'lastNotNull', 'first', 'range', 'diff', 'distinctCount', 'changeCount', 'median']
    .map((c) => F.reduce(c, v)), [1, 5, 2.8, 14, 6, 5, 5, 3, 4, 2, 4, 4, 3]);
  eq('delta counts a reset as a fresh start', F.reduce('delta', [10, 15, 3, 8]), 5 + 3 + 5);
  eq('calc names', ['lastNotNull', 'sum', 'mean', 'p95'].map(F.calcName), ['Last *', 'Total', 'Mean', '95th %']);
  eq('max of 200,000 values', F.reduce('max', Array.from({ length: 200000 }, (_, i) => i)), 199999);
}

console.log(passed + '/' + (passed + failed) + ' frame cases pass');
process.exit(failed ? 1 : 0);
