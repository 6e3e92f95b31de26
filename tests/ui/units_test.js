// Unit formatting of the Dashboards page (assets/units.js) against Grafana's own examples:
// the cases of Grafana's packages/grafana-data/src/valueFormats/valueFormats.test.ts (commit
// 045b472d08df504860e588b4dc028cf420709af4, AGPL-3.0; the expected strings are Grafana's, the
// code under test is ours), less its currency cases with locale symbols and the two `short`
// cases that set the long-gone `scaledDecimals` argument, plus the common units the
// Node Exporter Full and DCGM dashboards use, with the strings Grafana draws for them.
// Run by `cargo test --test dashboard_units`; exits non-zero on the first table mismatch.
'use strict';
const U = require('../../assets/units.js');

const grafana = [
  ['ms', 4, 0.0024, '0.0024 ms'],
  ['ms', 0, 100, '100 ms'],
  ['ms', 2, 1250, '1.25 s'],
  ['ms', 1, 10000086.123, '2.8 hour'],
  ['ms', 0, 1200, '1 s'],
  ['kbytes', 3, 10000000, '9.537 GiB'],
  ['deckbytes', 3, 10000000, '10.000 GB'],
  ['megwatt', 3, 1000, '1.000 GW'],
  ['kohm', 3, 1000, '1.000 MΩ'],
  ['Mohm', 3, 1000, '1.000 GΩ'],
  ['farad', 3, 1000, '1.000 kF'],
  ['µfarad', 3, 1000, '1.000 mF'],
  ['nfarad', 3, 1000, '1.000 µF'],
  ['pfarad', 3, 1000, '1.000 nF'],
  ['ffarad', 3, 1000, '1.000 pF'],
  ['henry', 3, 1000, '1.000 kH'],
  ['mhenry', 3, 1000, '1.000 H'],
  ['µhenry', 3, 1000, '1.000 mH'],
];
const toFixed = [
  [100, undefined, '100'],
  [100.4, undefined, '100'],
  [100.5, undefined, '101'],
  [100, 1, '100.0'],
  [100.37, 1, '100.4'],
  [100.63, 1, '100.6'],
  [100.4, 2, '100.40'],
  [100.5, 2, '100.50'],
  [NaN, undefined, 'NaN'],
  [186.123, -2, '186'],
];
const common = [
  ['bytes', undefined, 1024, '1 KiB'],
  ['bytes', undefined, 1536, '1.50 KiB'],
  ['bytes', 1, 5 * 1024 * 1024 * 1024, '5.0 GiB'],
  ['decbytes', undefined, 1500, '1.50 kB'],
  ['bits', undefined, 2048, '2 Kib'],
  ['decbits', undefined, 1e9, '1 Gb'],
  ['bps', undefined, 12500000, '12.5 Mb/s'],
  ['Bps', undefined, 1000, '1 kB/s'],
  ['percent', 1, 45.678, '45.7%'],
  ['percentunit', 1, 0.5, '50.0%'],
  ['percentunit', undefined, 0.123, '12.3%'],
  ['s', undefined, 0.0005, '500 µs'],
  ['s', undefined, 0.25, '250 ms'],
  ['s', undefined, 90, '1.50 min'],
  ['s', undefined, 0, '0 s'],
  ['s', 1, 7200, '2.0 hour'],
  ['µs', undefined, 1500, '1.50 ms'],
  ['ns', undefined, 2500000, '2.50 ms'],
  ['hertz', undefined, 2400000000, '2.40 GHz'],
  ['watt', undefined, 250, '250 W'],
  ['watt', undefined, 0.5, '500 mW'],
  ['celsius', undefined, 65, '65 °C'],
  ['short', undefined, 1200, '1.20 K'],
  ['short', undefined, 42, '42'],
  ['short', undefined, 2500000, '2.50 Mil'],
  ['none', undefined, 1234567, '1234567'],
  ['ops', undefined, 1500, '1.50K ops'],
  ['reqps', undefined, 12, '12 req/s'],
  ['iops', undefined, 250000, '250K io/s'],
  ['bool', undefined, 1, 'True'],
  ['bool_yes_no', undefined, 0, 'No'],
  ['rotrpm', undefined, 3000, '3000 rpm'],
  ['suffix:GPUs', undefined, 8, '8GPUs'],
  ['prefix:$', 2, 3, '$3.00'],
  ['furlongs', undefined, 3, '3 furlongs'],
];
let failed = 0;
function check(what, got, want) {
  if (got !== want) {
    failed++;
    console.error(`FAIL ${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}
for (const [id, d, v, want] of grafana.concat(common)) check(`${id} ${v} (decimals ${d})`, U.format(id, v, d), want);
for (const [v, d, want] of toFixed) check(`toFixed(${v}, ${d})`, U.toFixed(v, d), want);
const total = grafana.length + common.length + toFixed.length;
console.log(`${total - failed}/${total} unit formatting cases as Grafana formats them`);
process.exit(failed ? 1 : 0);
