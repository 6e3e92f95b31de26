// Grafana's value formats ("units") for dashboard panels: the same ids, scaling and decimals as
// Grafana's `valueFormats` (SI and IEC prefixes, durations, percent, counts, booleans and the
// custom `suffix:`/`prefix:`/`si:`/`count:` forms), written for Sightline. Loaded by the
// Dashboards page and, for its unit tests, by Node (`tests/ui/units_test.js`).
(function (root) {
  'use strict';

  function decimalsFor(value) {
    const abs = Math.abs(value);
    if (!isFinite(abs) || abs === 0) return 0;
    const log10 = Math.floor(Math.log(abs) / Math.LN10);
    let dec = -log10 + 1;
    const magn = Math.pow(10, -dec);
    if (abs / magn > 2.25) dec++;
    if (value % 1 === 0) dec = 0;
    return Math.max(0, dec);
  }

  function toFixed(value, decimals) {
    if (value === null || value === undefined) return '';
    if (Number.isNaN(value)) return 'NaN';
    if (value === Infinity || value === -Infinity) return value.toLocaleString();
    if (decimals === null || decimals === undefined) decimals = decimalsFor(value);
    decimals = Math.max(0, Math.min(20, Math.floor(decimals)));
    if (value === 0) return value.toFixed(decimals);
    const factor = decimals ? Math.pow(10, decimals) : 1;
    const formatted = String(Math.round(value * factor) / factor);
    if (formatted.indexOf('e') !== -1) return formatted;
    const dot = formatted.indexOf('.');
    const precision = dot === -1 ? 0 : formatted.length - dot - 1;
    if (precision < decimals) {
      return (precision ? formatted : formatted + '.') + String(factor).slice(1, decimals - precision + 1);
    }
    return formatted;
  }

  function fixedUnit(unit, asPrefix) {
    return (v, d) => {
      const text = toFixed(v, d);
      if (!unit) return { text, prefix: '', suffix: '' };
      return asPrefix ? { text, prefix: unit, suffix: '' } : { text, prefix: '', suffix: ' ' + unit };
    };
  }

  function scaled(factor, exts, offset) {
    offset = offset || 0;
    return (v, d) => {
      if (v === null || v === undefined) return { text: '', prefix: '', suffix: '' };
      if (!isFinite(v)) return { text: toFixed(v, d), prefix: '', suffix: '' };
      let i = v === 0 ? 0 : Math.floor(Math.log(Math.abs(v)) / Math.log(factor));
      i = Math.max(-offset, Math.min(exts.length - offset - 1, i));
      return { text: toFixed(v / Math.pow(factor, i), d), prefix: '', suffix: exts[offset + i] };
    };
  }

  const SI = ['f', 'p', 'n', 'µ', 'm', '', 'k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];
  const SI_BASE = 5;
  function siPrefix(unit, off) {
    off = off || 0;
    return scaled(1000, SI.map((p) => ' ' + p + unit), SI_BASE + off);
  }
  function binPrefix(unit, off) {
    const p = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei', 'Zi', 'Yi'].slice(off || 0);
    return scaled(1024, p.map((x) => ' ' + x + unit));
  }
  function countUnit(sym) {
    const s = scaled(1000, ['', 'K', 'M', 'B', 'T']);
    return (v, d) => {
      const r = s(v, d);
      r.suffix += ' ' + sym;
      return r;
    };
  }
  function fs(text, d, suffix) {
    return { text: toFixed(text, d), prefix: '', suffix };
  }

  function seconds(v, d) {
    const a = Math.abs(v);
    if (v === 0) return { text: '0', prefix: '', suffix: ' s' };
    if (a < 1e-6) return fs(v * 1e9, d, ' ns');
    if (a < 1e-3) return fs(v * 1e6, d, ' µs');
    if (a < 1) return fs(v * 1e3, d, ' ms');
    if (a < 60) return fs(v, d, ' s');
    if (a < 3600) return fs(v / 60, d, ' min');
    if (a < 86400) return fs(v / 3600, d, ' hour');
    if (a < 604800) return fs(v / 86400, d, ' day');
    if (a < 31536000) return fs(v / 604800, d, ' week');
    return fs(v / 31536000, d, ' year');
  }
  function millis(v, d) {
    const a = Math.abs(v);
    if (a < 1000) return fs(v, d, ' ms');
    if (a < 60000) return fs(v / 1000, d, ' s');
    if (a < 3600000) return fs(v / 60000, d, ' min');
    if (a < 86400000) return fs(v / 3600000, d, ' hour');
    if (a < 31536000000) return fs(v / 86400000, d, ' day');
    return fs(v / 31536000000, d, ' year');
  }
  function micros(v, d) {
    const a = Math.abs(v);
    if (a < 1000) return fs(v, d, ' µs');
    if (a < 1000000) return fs(v / 1000, d, ' ms');
    return fs(v / 1000000, d, ' s');
  }
  function nanos(v, d) {
    const a = Math.abs(v);
    if (a < 1000) return fs(v, d, ' ns');
    if (a < 1e6) return fs(v / 1e3, d, ' µs');
    if (a < 1e9) return fs(v / 1e6, d, ' ms');
    if (a < 60e9) return fs(v / 1e9, d, ' s');
    if (a < 3600e9) return fs(v / 60e9, d, ' min');
    if (a < 86400e9) return fs(v / 3600e9, d, ' hour');
    return fs(v / 86400e9, d, ' day');
  }
  function bool(t, f) {
    return (v) => ({ text: v ? t : f, prefix: '', suffix: '' });
  }

  const short = scaled(1000, ['', ' K', ' Mil', ' Bil', ' Tri', ' Quadr', ' Quint', ' Sext', ' Sept']);
  const FORMATS = {
    none: fixedUnit(''),
    short,
    number: fixedUnit(''),
    percent: (v, d) => ({ text: toFixed(v, d), prefix: '', suffix: '%' }),
    percentunit: (v, d) => ({ text: toFixed(100 * v, d), prefix: '', suffix: '%' }),
    humidity: (v, d) => ({ text: toFixed(v, d), prefix: '', suffix: '%H' }),
    dB: fixedUnit('dB'),
    hex: (v) => ({ text: Math.round(v).toString(16).toUpperCase(), prefix: '', suffix: '' }),
    hex0x: (v) => ({ text: (v < 0 ? '-0x' : '0x') + Math.abs(Math.round(v)).toString(16).toUpperCase(), prefix: '', suffix: '' }),
    sci: (v, d) => ({ text: v.toExponential(d === null || d === undefined ? undefined : Math.max(0, d)), prefix: '', suffix: '' }),
    // Data: IEC (bytes, bits) and SI (decbytes, decbits).
    bits: binPrefix('b'),
    bytes: binPrefix('B'),
    kbytes: binPrefix('B', 1),
    mbytes: binPrefix('B', 2),
    gbytes: binPrefix('B', 3),
    tbytes: binPrefix('B', 4),
    pbytes: binPrefix('B', 5),
    decbits: siPrefix('b'),
    decbytes: siPrefix('B'),
    deckbytes: siPrefix('B', 1),
    decmbytes: siPrefix('B', 2),
    decgbytes: siPrefix('B', 3),
    dectbytes: siPrefix('B', 4),
    decpbytes: siPrefix('B', 5),
    // Data rates.
    pps: siPrefix('p/s'),
    binbps: binPrefix('b/s'),
    bps: siPrefix('b/s'),
    binBps: binPrefix('B/s'),
    Bps: siPrefix('B/s'),
    KiBs: binPrefix('B/s', 1),
    Kibits: binPrefix('b/s', 1),
    KBs: siPrefix('B/s', 1),
    Kbits: siPrefix('b/s', 1),
    MiBs: binPrefix('B/s', 2),
    Mibits: binPrefix('b/s', 2),
    MBs: siPrefix('B/s', 2),
    Mbits: siPrefix('b/s', 2),
    GiBs: binPrefix('B/s', 3),
    Gibits: binPrefix('b/s', 3),
    GBs: siPrefix('B/s', 3),
    Gbits: siPrefix('b/s', 3),
    // Throughput.
    ops: countUnit('ops'),
    reqps: countUnit('req/s'),
    rps: countUnit('rd/s'),
    wps: countUnit('wr/s'),
    iops: countUnit('io/s'),
    eps: countUnit('evt/s'),
    mps: countUnit('msg/s'),
    recps: countUnit('rec/s'),
    rowsps: countUnit('rows/s'),
    cps: countUnit('c/s'),
    opm: countUnit('ops/min'),
    reqpm: countUnit('req/min'),
    rpm: countUnit('rd/min'),
    wpm: countUnit('wr/min'),
    epm: countUnit('evt/min'),
    mpm: countUnit('msg/min'),
    cpm: countUnit('c/min'),
    // Time.
    hertz: siPrefix('Hz'),
    ns: nanos,
    'µs': micros,
    us: micros,
    ms: millis,
    s: seconds,
    m: (v, d) => (Math.abs(v) < 60 ? fs(v, d, ' min') : Math.abs(v) < 1440 ? fs(v / 60, d, ' hour') : fs(v / 1440, d, ' day')),
    h: (v, d) => (Math.abs(v) < 24 ? fs(v, d, ' hour') : Math.abs(v) < 168 ? fs(v / 24, d, ' day') : fs(v / 168, d, ' week')),
    d: (v, d) => (Math.abs(v) < 7 ? fs(v, d, ' day') : Math.abs(v) < 365 ? fs(v / 7, d, ' week') : fs(v / 365, d, ' year')),
    // Energy and temperature.
    watt: siPrefix('W'),
    kwatt: siPrefix('W', 1),
    megwatt: siPrefix('W', 2),
    gwatt: siPrefix('W', 3),
    mwatt: siPrefix('W', -1),
    voltamp: siPrefix('VA'),
    kvoltamp: siPrefix('VA', 1),
    watth: siPrefix('Wh'),
    kwatth: siPrefix('Wh', 1),
    joule: siPrefix('J'),
    ev: siPrefix('eV'),
    amp: siPrefix('A'),
    kamp: siPrefix('A', 1),
    mamp: siPrefix('A', -1),
    volt: siPrefix('V'),
    kvolt: siPrefix('V', 1),
    mvolt: siPrefix('V', -1),
    dBm: siPrefix('dBm'),
    ohm: siPrefix('Ω'),
    kohm: siPrefix('Ω', 1),
    Mohm: siPrefix('Ω', 2),
    farad: siPrefix('F'),
    'µfarad': siPrefix('F', -2),
    nfarad: siPrefix('F', -3),
    pfarad: siPrefix('F', -4),
    ffarad: siPrefix('F', -5),
    henry: siPrefix('H'),
    mhenry: siPrefix('H', -1),
    'µhenry': siPrefix('H', -2),
    celsius: fixedUnit('°C'),
    fahrenheit: fixedUnit('°F'),
    kelvin: fixedUnit('K'),
    rotrpm: fixedUnit('rpm'),
    rothz: siPrefix('Hz'),
    bool: bool('True', 'False'),
    bool_yes_no: bool('Yes', 'No'),
    bool_on_off: bool('On', 'Off'),
    // Lengths, masses, misc.
    lengthm: siPrefix('m'),
    lengthmm: siPrefix('m', -1),
    lengthkm: siPrefix('m', 1),
    massg: siPrefix('g'),
    masskg: siPrefix('g', 1),
    currencyUSD: (v, d) => { const r = scaled(1000, ['', 'K', 'M', 'B', 'T'])(v, d); r.prefix = '$'; return r; },
    currencyEUR: (v, d) => { const r = scaled(1000, ['', 'K', 'M', 'B', 'T'])(v, d); r.prefix = '€'; return r; },
  };

  function formatter(id) {
    if (!id) return FORMATS.short;
    if (FORMATS[id]) return FORMATS[id];
    const colon = id.indexOf(':');
    if (colon > 0) {
      const kind = id.slice(0, colon);
      const arg = id.slice(colon + 1);
      if (kind === 'suffix') return (v, d) => ({ text: toFixed(v, d), prefix: '', suffix: arg });
      if (kind === 'prefix') return (v, d) => ({ text: toFixed(v, d), prefix: arg, suffix: '' });
      if (kind === 'si') return siPrefix(arg);
      if (kind === 'count') return countUnit(arg);
      if (kind === 'currency') return (v, d) => { const r = scaled(1000, ['', 'K', 'M', 'B', 'T'])(v, d); r.prefix = arg; return r; };
    }
    // Grafana shows an unknown unit as a suffix.
    return fixedUnit(id);
  }

  // The value as Grafana displays it: prefix, number and suffix in one string.
  function format(id, value, decimals) {
    if (value === null || value === undefined) return '';
    if (Number.isNaN(value)) return 'NaN';
    const r = formatter(id)(value, decimals);
    return (r.prefix || '') + r.text + (r.suffix || '');
  }

  root.SightlineUnits = { format, formatter, toFixed, decimalsFor };
  if (typeof module !== 'undefined' && module.exports) module.exports = root.SightlineUnits;
})(typeof self !== 'undefined' ? self : globalThis);
