//! A dashboard, its resolved variables and a time range turned into what the page draws:
//! sections (the panels before the first row, then one per row, repeated rows expanded), each
//! a grid of panels (repeated panels expanded), each panel a spec the page script reads: its
//! type, title, grid position, field config and options in the current schema (the legacy
//! `graph`, `singlestat` and 6.x `fieldOptions` mapped onto it), and its queries with every
//! variable interpolated and the step Grafana would use. A panel Sightline cannot draw, or
//! whose data source it cannot answer, carries the reason instead of queries.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::interpolate::{Default, VarValue, Vars, interpolate};
use super::text;
use super::time;
use super::vars::Resolved;

/// The longest query text after interpolation (a variable with many values selected can
/// otherwise make a query of megabytes).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// The most panels drawn after repeats are expanded.
pub const MAX_RENDERED_PANELS: usize = 1500;
/// The width the page assumes for the dashboard's 24 columns when a panel sets no
/// `maxDataPoints` (Grafana uses the panel's width in pixels).
pub const ASSUMED_WIDTH_PX: i64 = 1600;

/// The panel types the page draws.
pub const SUPPORTED: [&str; 10] = [
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "heatmap",
    "text",
    "piechart",
    "barchart",
    "row",
];

#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// One grid of panels, under a row header or not.
#[derive(Debug, Clone)]
pub struct Section {
    pub title: Option<String>,
    pub collapsed: bool,
    pub panels: Vec<PanelView>,
}

/// A panel as the template places it.
#[derive(Debug, Clone)]
pub struct PanelView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub description: String,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    /// The spec the page script reads (JSON).
    pub spec: String,
    /// Sanitised HTML of a text panel.
    pub html: String,
    /// Why the panel is not drawn, if it is not.
    pub unsupported: String,
}

struct Ctx<'a> {
    frame: Frame,
    inputs: BTreeMap<String, String>,
    ds_vars: &'a [(String, String)],
    count: usize,
}

/// The page's sections.
pub fn sections(d: &Value, r: &Resolved, frame: Frame) -> (Vec<Section>, Option<String>) {
    let mut ctx = Ctx {
        frame,
        inputs: d
            .get("__inputs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|i| {
                        Some((
                            i.get("name")?.as_str()?.to_string(),
                            i.get("pluginId")
                                .and_then(Value::as_str)
                                .unwrap_or("prometheus")
                                .to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ds_vars: &r.datasource_types,
        count: 0,
    };
    let panels = with_library_panels(d);
    // Split at rows: (row panel or none, its panels).
    let mut groups: Vec<(Option<&Value>, Vec<&Value>)> = vec![(None, Vec::new())];
    for p in &panels {
        if p.get("type").and_then(Value::as_str) == Some("row") {
            let mut inner: Vec<&Value> = Vec::new();
            if let Some(nested) = p.get("panels").and_then(Value::as_array) {
                inner.extend(nested.iter());
            }
            groups.push((Some(p), inner));
            // A collapsed row holds only its own panels; top-level panels after it stay in
            // view below it, as Grafana shows them.
            if p.get("collapsed").and_then(Value::as_bool) == Some(true) {
                groups.push((None, Vec::new()));
            }
        } else if let Some(last) = groups.last_mut() {
            last.1.push(p);
        }
    }
    let mut out = Vec::new();
    let mut truncated = None;
    for (row, members) in groups {
        if row.is_none() && members.is_empty() {
            continue;
        }
        // A repeated row: one section per value of its variable.
        let scopes = match row.and_then(|rw| repeat_var(rw, &r.values)) {
            Some((name, vals)) => vals
                .into_iter()
                .map(|v| scoped(&r.values, &name, v))
                .collect(),
            None => vec![r.values.clone()],
        };
        for vars in scopes {
            let title = row.map(|rw| {
                interpolate(
                    rw.get("title").and_then(Value::as_str).unwrap_or(""),
                    &vars,
                    Default::Text,
                )
            });
            let collapsed = row
                .and_then(|rw| rw.get("collapsed"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let views = layout(&members, &vars, &mut ctx);
            if ctx.count > MAX_RENDERED_PANELS {
                truncated = Some(format!(
                    "this dashboard expands to more than {MAX_RENDERED_PANELS} panels; the rest are not drawn"
                ));
                break;
            }
            out.push(Section {
                title,
                collapsed,
                panels: views,
            });
        }
    }
    (out, truncated)
}

/// The dashboard's panels with library panels filled in from `__elements` (where a dashboard
/// exported for sharing carries their models), keeping each use's position and id.
fn with_library_panels(d: &Value) -> Vec<Value> {
    let elements = d.get("__elements").and_then(Value::as_object);
    let fill = |p: &Value| -> Value {
        let model = p
            .get("libraryPanel")
            .and_then(|l| l.get("uid"))
            .and_then(Value::as_str)
            .and_then(|u| elements?.get(u))
            .and_then(|e| e.get("model"))
            .and_then(Value::as_object);
        match (model, p.as_object()) {
            (Some(m), Some(own)) if !own.contains_key("type") || !own.contains_key("targets") => {
                let mut merged = m.clone();
                for k in ["gridPos", "id", "libraryPanel"] {
                    if let Some(v) = own.get(k) {
                        merged.insert(k.into(), v.clone());
                    }
                }
                Value::Object(merged)
            }
            _ => p.clone(),
        }
    };
    d.get("panels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| {
                    let mut p = fill(p);
                    if let Some(nested) = p.get("panels").and_then(Value::as_array) {
                        let inner: Vec<Value> = nested.iter().map(fill).collect();
                        p["panels"] = Value::Array(inner);
                    }
                    p
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A panel's or row's `repeat` variable and the values to repeat over.
fn repeat_var(p: &Value, vars: &Vars) -> Option<(String, Vec<String>)> {
    let name = p.get("repeat").and_then(Value::as_str)?.trim();
    let name = name.trim_start_matches('$');
    let v = vars.get(name)?;
    (!v.values.is_empty()).then(|| (name.to_string(), v.values.clone()))
}

/// `vars` with `name` narrowed to one value (Grafana's scoped variables of a repeat).
fn scoped(vars: &Vars, name: &str, value: String) -> Vars {
    let mut v = vars.clone();
    let multi = v.get(name).is_some_and(|x| x.multi);
    let text = v
        .get(name)
        .and_then(|x| {
            x.values
                .iter()
                .position(|y| *y == value)
                .and_then(|i| x.texts.get(i).cloned())
        })
        .unwrap_or_else(|| value.clone());
    v.insert(
        name.to_string(),
        VarValue {
            values: vec![value],
            texts: vec![text],
            multi,
            custom_all: None,
        },
    );
    v
}

fn grid(p: &Value) -> (i64, i64, i64, i64) {
    let g = p.get("gridPos");
    let n = |k: &str, d: i64| {
        g.and_then(|g| g.get(k))
            .and_then(Value::as_f64)
            .map(|v| v as i64)
            .unwrap_or(d)
    };
    let w = n("w", 12).clamp(1, 24);
    (
        n("x", 0).clamp(0, 24 - w),
        n("y", 0).max(0),
        w,
        n("h", 8).clamp(1, 200),
    )
}

/// Places a section's panels (repeats expanded) relative to the section's top.
fn layout(members: &[&Value], vars: &Vars, ctx: &mut Ctx) -> Vec<PanelView> {
    let base = members.iter().map(|p| grid(p).1).min().unwrap_or(0);
    // (panel, scoped vars, x, y, w, h, the source panel's y) before shifting for repeats.
    type Placed<'a> = (&'a Value, Vars, i64, i64, i64, i64, i64);
    let mut placed: Vec<Placed> = Vec::new();
    let mut sorted: Vec<&&Value> = members.iter().collect();
    sorted.sort_by_key(|p| {
        let (x, y, _, _) = grid(p);
        (y, x)
    });
    // Extra rows added by repeats above a given y.
    let mut shifts: Vec<(i64, i64)> = Vec::new();
    for p in sorted {
        let (x, y, w, h) = grid(p);
        let y = y - base;
        match repeat_var(p, vars) {
            Some((name, vals)) if vals.len() > 1 => {
                let horizontal = p.get("repeatDirection").and_then(Value::as_str) != Some("v");
                if horizontal {
                    let max_per_row = p
                        .get("maxPerRow")
                        .and_then(Value::as_i64)
                        .unwrap_or(4)
                        .clamp(1, 24);
                    let width = (24 / vals.len() as i64).max(24 / max_per_row).max(1);
                    let per_row = (24 / width).max(1);
                    let rows = (vals.len() as i64 + per_row - 1) / per_row;
                    for (i, v) in vals.into_iter().enumerate() {
                        let i = i as i64;
                        placed.push((
                            p,
                            scoped(vars, &name, v),
                            (i % per_row) * width,
                            y + (i / per_row) * h,
                            width,
                            h,
                            y,
                        ));
                    }
                    shifts.push((y + h, (rows - 1) * h));
                } else {
                    let n = vals.len() as i64;
                    for (i, v) in vals.into_iter().enumerate() {
                        placed.push((p, scoped(vars, &name, v), x, y + i as i64 * h, w, h, y));
                    }
                    shifts.push((y + h, (n - 1) * h));
                }
            }
            Some((name, vals)) => {
                let v = vals.into_iter().next().unwrap_or_default();
                placed.push((p, scoped(vars, &name, v), x, y, w, h, y));
            }
            None => placed.push((p, vars.clone(), x, y, w, h, y)),
        }
    }
    // Panels below a repeated one move down by the rows its copies added.
    let mut boxes: Vec<(usize, i64, i64, i64, i64)> = placed
        .iter()
        .enumerate()
        .map(|(i, (_, _, x, y, w, h, origin))| {
            let shift: i64 = shifts
                .iter()
                .filter(|(at, _)| origin >= at)
                .map(|(_, s)| s)
                .sum();
            (i, *x, y + shift, *w, *h)
        })
        .collect();
    compact(&mut boxes);
    boxes.sort_by_key(|b| b.0);
    let mut out = Vec::new();
    for ((p, vars, ..), (_, x, y, w, h)) in placed.into_iter().zip(boxes) {
        ctx.count += 1;
        if ctx.count > MAX_RENDERED_PANELS {
            break;
        }
        out.push(view(p, &vars, x, y, w, h, ctx));
    }
    out
}

/// Grafana's grid (react-grid-layout, vertical compaction): in order of position, each panel
/// moves up while the space above is free, then down past any panel it overlaps. Published
/// dashboards do have overlapping positions (the DCGM dashboard places two panels at one spot).
fn compact(boxes: &mut [(usize, i64, i64, i64, i64)]) {
    boxes.sort_by_key(|b| (b.2, b.1));
    let overlaps = |a: &(usize, i64, i64, i64, i64), x: i64, y: i64, w: i64, h: i64| {
        a.1 < x + w && x < a.1 + a.3 && a.2 < y + h && y < a.2 + a.4
    };
    for i in 0..boxes.len() {
        let (_, x, mut y, w, h) = boxes[i];
        let done = &boxes[..i];
        while y > 0 && !done.iter().any(|b| overlaps(b, x, y - 1, w, h)) {
            y -= 1;
        }
        while let Some(b) = done.iter().find(|b| overlaps(b, x, y, w, h)) {
            y = b.2 + b.4;
        }
        boxes[i].2 = y;
    }
}

/// The panel's data source: `Ok` for one Sightline answers (Prometheus), or why not.
fn datasource(ds: Option<&Value>, ctx: &Ctx) -> Result<(), String> {
    let by_name = |name: &str| -> Result<(), String> {
        let n = name.trim();
        let inner = n
            .strip_prefix("${")
            .and_then(|s| s.strip_suffix('}'))
            .or_else(|| n.strip_prefix('$'));
        if let Some(var) = inner {
            let var = var.split(':').next().unwrap_or(var);
            if let Some(t) = ctx.inputs.get(var) {
                return check_type(t);
            }
            if let Some((_, t)) = ctx.ds_vars.iter().find(|(v, _)| v == var) {
                return check_type(t);
            }
            return Ok(());
        }
        match n {
            "-- Grafana --" | "grafana" => {
                Err("Grafana's built-in data source is not answered by Sightline".into())
            }
            "-- Dashboard --" => Err(
                "the Dashboard data source (another panel's results) is not answered by Sightline"
                    .into(),
            ),
            _ => Ok(()),
        }
    };
    match ds {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(name)) => by_name(name),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("datasource") => match o.get("uid").and_then(Value::as_str) {
                Some("-- Mixed --") => Ok(()),
                Some(u) => by_name(if u == "grafana" { "-- Grafana --" } else { u }),
                None => Ok(()),
            },
            Some(t) if !t.contains('$') => check_type(t),
            _ => match o.get("uid").and_then(Value::as_str) {
                Some(u) => by_name(u),
                None => Ok(()),
            },
        },
        Some(_) => Ok(()),
    }
}

fn check_type(t: &str) -> Result<(), String> {
    match t {
        "prometheus" => Ok(()),
        "loki" => Err("a Loki data source: Sightline's dashboards draw Prometheus queries only; use the Logs page".into()),
        other => Err(format!("a {other:?} data source, which Sightline does not answer")),
    }
}

fn obj(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Thresholds in the current shape (`{mode, steps}`) from either it or 6.x's list of steps.
fn thresholds(v: Option<&Value>) -> Option<Value> {
    match v? {
        Value::Array(steps) => Some(json!({"mode": "absolute", "steps": steps})),
        o @ Value::Object(_) => Some(o.clone()),
        _ => None,
    }
}

/// The panel's type, field config and options in the current schema.
fn normalise(p: &Value) -> Normal {
    let kind = p
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut fc = obj(p.get("fieldConfig"));
    let mut defaults = obj(fc.get("defaults"));
    let mut options = obj(p.get("options"));
    let mut overrides = fc.remove("overrides").unwrap_or(json!([]));
    let mut transformations: Vec<Value> = p
        .get("transformations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // 6.x: options.fieldOptions holds defaults and calcs.
    if let Some(fo) = options.remove("fieldOptions") {
        for (k, v) in obj(fo.get("defaults")) {
            defaults.entry(k).or_insert(v);
        }
        if let Some(c) = fo.get("calcs") {
            options.insert(
                "reduceOptions".into(),
                json!({"calcs": c, "values": fo.get("values").cloned().unwrap_or(json!(false))}),
            );
        }
        if let Some(t) = fo.get("thresholds") {
            defaults.entry("thresholds").or_insert(t.clone());
        }
    }
    if let Some(t) = thresholds(defaults.get("thresholds")) {
        defaults.insert("thresholds".into(), t);
    }
    let kind = match kind.as_str() {
        "graph" => {
            legacy_graph(p, &mut defaults, &mut overrides, &mut options);
            "timeseries".to_string()
        }
        "singlestat" | "grafana-singlestat-panel" => {
            legacy_singlestat(p, &mut defaults, &mut options)
        }
        // Before Grafana 7 the Angular table was "table" too; its `styles` tell it apart (the
        // current table has none), as in Grafana's migration to schema 24.
        k if k == "table-old" || (k == "table" && p.get("styles").is_some_and(Value::is_array)) => {
            legacy_table(p, &mut defaults, &mut overrides, &mut transformations);
            "table".into()
        }
        "grafana-piechart-panel" => "piechart".into(),
        "graph2" | "trend" | "xychart" => "timeseries".into(),
        _ => kind,
    };
    Normal {
        kind,
        defaults,
        overrides,
        options,
        transformations,
    }
}

/// A panel in the current schema: what the page draws it from.
struct Normal {
    kind: String,
    defaults: Map<String, Value>,
    overrides: Value,
    options: Map<String, Value>,
    /// Grafana's transformations, in order (the table draws them; see `assets/frames.js`).
    transformations: Vec<Value>,
}

fn legacy_graph(
    p: &Value,
    d: &mut Map<String, Value>,
    overrides: &mut Value,
    o: &mut Map<String, Value>,
) {
    let axes = p.get("yaxes").and_then(Value::as_array);
    let left = axes.and_then(|a| a.first());
    let right = axes.and_then(|a| a.get(1));
    if let Some(f) = left.and_then(|a| a.get("format")).and_then(Value::as_str) {
        d.entry("unit").or_insert(json!(f));
    }
    for k in ["min", "max"] {
        if let Some(v) = num(left.and_then(|a| a.get(k))) {
            d.entry(k).or_insert(json!(v));
        }
    }
    if let Some(dec) = num(p.get("decimals")) {
        d.entry("decimals").or_insert(json!(dec));
    }
    let flag = |k: &str, dflt: bool| p.get(k).and_then(Value::as_bool).unwrap_or(dflt);
    let stack = flag("stack", false);
    let mode = if !stack {
        "none"
    } else if flag("percentage", false) {
        "percent"
    } else {
        "normal"
    };
    let draw = if flag("bars", false) {
        "bars"
    } else if flag("lines", true) {
        "line"
    } else {
        "points"
    };
    let fill = num(p.get("fill")).unwrap_or(1.0) * 10.0;
    d.insert(
        "custom".into(),
        json!({"fillOpacity": fill, "lineWidth": num(p.get("linewidth")).unwrap_or(1.0), "drawStyle": draw, "stacking": {"mode": mode}}),
    );
    d.entry("color")
        .or_insert(json!({"mode": "palette-classic"}));
    // The legend and tooltip as Grafana's graph-to-time-series migration sets them: the legend's
    // values (min, max, avg, current, total) become calculations, "as table" a table legend,
    // "right side" a legend on the right; a shared tooltip lists every series.
    let legend = p.get("legend").cloned().unwrap_or(Value::Null);
    let lflag = |k: &str| legend.get(k).and_then(Value::as_bool);
    // In the order the legend object lists them, as Grafana's migration reads its keys.
    let mut calcs = Vec::new();
    if lflag("values") == Some(true)
        && let Some(m) = legend.as_object()
    {
        for (k, v) in m {
            let calc = match k.as_str() {
                "min" => "min",
                "max" => "max",
                "avg" => "mean",
                "current" => "lastNotNull",
                "total" => "sum",
                _ => continue,
            };
            if v.as_bool() == Some(true) {
                calcs.push(calc);
            }
        }
    }
    let table = lflag("alignAsTable") == Some(true);
    o.insert(
        "legend".into(),
        json!({
            "showLegend": lflag("show").unwrap_or(true),
            "displayMode": if table { "table" } else { "list" },
            "placement": if lflag("rightSide") == Some(true) { "right" } else { "bottom" },
            "calcs": calcs,
        }),
    );
    let shared = p
        .get("tooltip")
        .and_then(|t| t.get("shared"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    o.insert(
        "tooltip".into(),
        json!({"mode": if shared { "multi" } else { "single" }}),
    );
    let mut list = overrides.as_array().cloned().unwrap_or_default();
    for so in p
        .get("seriesOverrides")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(alias) = so.get("alias").and_then(Value::as_str) else {
            continue;
        };
        let matcher = match alias.strip_prefix('/').and_then(|a| a.rsplit_once('/')) {
            Some((re, _)) => json!({"id": "byRegexp", "options": re}),
            None => json!({"id": "byName", "options": alias}),
        };
        let mut props = Vec::new();
        if let Some(s) = so.get("stack") {
            let m = if s.as_bool() == Some(false) {
                "none"
            } else {
                "normal"
            };
            props.push(json!({"id": "custom.stacking", "value": {"mode": m}}));
        }
        if let Some(f) = num(so.get("fill")) {
            props.push(json!({"id": "custom.fillOpacity", "value": f * 10.0}));
        }
        if so.get("transform").and_then(Value::as_str) == Some("negative-Y") {
            props.push(json!({"id": "custom.transform", "value": "negative-Y"}));
        }
        if num(so.get("yaxis")) == Some(2.0)
            && let Some(f) = right.and_then(|a| a.get("format"))
        {
            props.push(json!({"id": "unit", "value": f}));
        }
        if let Some(c) = so.get("color") {
            props.push(json!({"id": "color", "value": {"mode": "fixed", "fixedColor": c}}));
        }
        if so.get("bars").and_then(Value::as_bool) == Some(true) {
            props.push(json!({"id": "custom.drawStyle", "value": "bars"}));
        }
        if so.get("legend").and_then(Value::as_bool) == Some(false)
            || so.get("hiddenSeries").and_then(Value::as_bool) == Some(true)
        {
            props.push(json!({"id": "custom.hideFrom", "value": {"legend": true, "viz": false, "tooltip": false}}));
        }
        if !props.is_empty() {
            list.push(json!({"matcher": matcher, "properties": props}));
        }
    }
    for (name, c) in obj(p.get("aliasColors")) {
        list.push(json!({"matcher": {"id": "byName", "options": name}, "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}]}));
    }
    *overrides = Value::Array(list);
}

/// Thresholds from a legacy panel's limits ("50,80", or a list) and colours (one more than limits).
fn legacy_steps(thresholds: Option<&Value>, colors: Option<&Value>) -> Value {
    let colors: Vec<Value> = colors
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![json!("green"), json!("orange"), json!("red")]);
    let limits: Vec<f64> = match thresholds {
        Some(Value::String(s)) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(|x| num(Some(x))).collect(),
        _ => Vec::new(),
    };
    let mut steps =
        vec![json!({"color": colors.first().cloned().unwrap_or(json!("green")), "value": null})];
    for (i, l) in limits.iter().enumerate() {
        steps
            .push(json!({"color": colors.get(i + 1).cloned().unwrap_or(json!("red")), "value": l}));
    }
    json!({"mode": "absolute", "steps": steps})
}

/// The Angular table (Grafana before 7, `table-old`) as Grafana's migration turns it into the
/// current table: its `transform` becomes a transformation, each of its `styles` an override
/// (the `/.*/` style the defaults): alias, unit, decimals, hidden columns, thresholds with cell
/// or value colouring. Date styles need nothing: time columns are drawn as dates.
fn legacy_table(
    p: &Value,
    d: &mut Map<String, Value>,
    overrides: &mut Value,
    transformations: &mut Vec<Value>,
) {
    match p.get("transform").and_then(Value::as_str) {
        Some("timeseries_to_columns") => {
            transformations.push(json!({"id": "seriesToColumns", "options": {}}))
        }
        Some("table") => transformations.push(json!({"id": "merge", "options": {}})),
        Some("timeseries_aggregations") => {
            let reducers: Vec<Value> = p
                .get("columns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .filter_map(|c| c.get("value").and_then(Value::as_str))
                        .map(|c| match c {
                            "avg" => json!("mean"),
                            "total" => json!("sum"),
                            "current" => json!("lastNotNull"),
                            other => json!(other),
                        })
                        .collect()
                })
                .unwrap_or_default();
            transformations.push(json!({"id": "reduce", "options": {"reducers": reducers}}));
        }
        // timeseries_to_rows, the default: a row per series and time.
        Some("timeseries_to_rows") | None => {
            transformations.push(json!({"id": "seriesToRows", "options": {}}))
        }
        Some(_) => {}
    }
    let mut list = overrides.as_array().cloned().unwrap_or_default();
    let styles: Vec<&Value> = p
        .get("styles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    // The old table styles a column by the first style that matches it, and a last `/.*/`
    // style of type hidden hides every column no other style names. As overrides (where the
    // last match wins): in reverse order, each showing its columns.
    let hide_rest = styles.iter().any(|st| {
        st.get("pattern").and_then(Value::as_str) == Some("/.*/")
            && st.get("type").and_then(Value::as_str) == Some("hidden")
    });
    let mut own = Vec::new();
    for st in styles {
        let mut props = Map::new();
        if let Some(a) = st
            .get("alias")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            props.insert("displayName".into(), json!(a));
        }
        match st.get("type").and_then(Value::as_str) {
            Some("hidden") => {
                props.insert("custom.hidden".into(), json!(true));
            }
            Some(_) if hide_rest => {
                props.insert("custom.hidden".into(), json!(false));
            }
            _ => {}
        }
        if st.get("type").and_then(Value::as_str) == Some("number") {
            if let Some(u) = st.get("unit").and_then(Value::as_str) {
                props.insert("unit".into(), json!(u));
            }
            if let Some(dec) = num(st.get("decimals")) {
                props.insert("decimals".into(), json!(dec));
            }
        }
        if let Some(mode) = st.get("colorMode").and_then(Value::as_str) {
            let display = match mode {
                "cell" | "row" => "color-background",
                _ => "color-text",
            };
            props.insert("custom.displayMode".into(), json!(display));
            props.insert(
                "thresholds".into(),
                legacy_steps(st.get("thresholds"), st.get("colors")),
            );
            props.insert("color".into(), json!({"mode": "thresholds"}));
        }
        let pattern = st.get("pattern").and_then(Value::as_str).unwrap_or("");
        if pattern == "/.*/" {
            for (k, v) in props {
                if !d.contains_key(&k) {
                    set_path(d, &k, v);
                }
            }
            continue;
        }
        if pattern.is_empty() || props.is_empty() {
            continue;
        }
        let matcher = if pattern.starts_with('/') && pattern.len() > 1 {
            json!({"id": "byRegexp", "options": pattern})
        } else {
            json!({"id": "byName", "options": pattern})
        };
        let properties: Vec<Value> = props
            .into_iter()
            .map(|(id, value)| json!({"id": id, "value": value}))
            .collect();
        own.push(json!({"matcher": matcher, "properties": properties}));
    }
    list.extend(own.into_iter().rev());
    *overrides = Value::Array(list);
}

/// Sets `a.b.c` in a field config map.
fn set_path(d: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        Some((head, rest)) => {
            let e = d.entry(head.to_string()).or_insert_with(|| json!({}));
            if !e.is_object() {
                *e = json!({});
            }
            if let Value::Object(m) = e {
                set_path(m, rest, v);
            }
        }
        None => {
            d.insert(path.to_string(), v);
        }
    }
}

fn legacy_singlestat(p: &Value, d: &mut Map<String, Value>, o: &mut Map<String, Value>) -> String {
    if let Some(f) = p.get("format").and_then(Value::as_str) {
        d.insert("unit".into(), json!(f));
    }
    if let Some(dec) = num(p.get("decimals")) {
        d.insert("decimals".into(), json!(dec));
    }
    d.insert(
        "thresholds".into(),
        legacy_steps(p.get("thresholds"), p.get("colors")),
    );
    let calc = match p.get("valueName").and_then(Value::as_str).unwrap_or("avg") {
        "avg" => "mean",
        "current" => "lastNotNull",
        "total" => "sum",
        "first" => "firstNotNull",
        "delta" => "delta",
        "diff" => "diff",
        "range" => "range",
        "min" => "min",
        "max" => "max",
        _ => "mean",
    };
    o.insert("reduceOptions".into(), json!({"calcs": [calc]}));
    let mode = if p.get("colorBackground").and_then(Value::as_bool) == Some(true) {
        "background"
    } else if p.get("colorValue").and_then(Value::as_bool) == Some(true) {
        "value"
    } else {
        "none"
    };
    o.insert("colorMode".into(), json!(mode));
    d.insert("color".into(), json!({"mode": "thresholds"}));
    let spark = p
        .get("sparkline")
        .and_then(|s| s.get("show"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    o.insert(
        "graphMode".into(),
        json!(if spark { "area" } else { "none" }),
    );
    let gauge = p.get("gauge");
    if gauge.and_then(|g| g.get("show")).and_then(Value::as_bool) == Some(true) {
        if let Some(v) = num(gauge.and_then(|g| g.get("minValue"))) {
            d.insert("min".into(), json!(v));
        }
        if let Some(v) = num(gauge.and_then(|g| g.get("maxValue"))) {
            d.insert("max".into(), json!(v));
        }
        return "gauge".into();
    }
    "stat".into()
}

fn view(p: &Value, vars: &Vars, x: i64, y: i64, w: i64, h: i64, ctx: &Ctx) -> PanelView {
    let Normal {
        kind,
        defaults,
        overrides,
        options,
        transformations,
    } = normalise(p);
    let title = interpolate(
        p.get("title").and_then(Value::as_str).unwrap_or(""),
        vars,
        Default::Text,
    );
    let description = interpolate(
        p.get("description").and_then(Value::as_str).unwrap_or(""),
        vars,
        Default::Text,
    );
    let mut unsupported = String::new();
    if let Some(lib) = p.get("libraryPanel").filter(|_| p.get("type").is_none()) {
        let name = lib
            .get("name")
            .or_else(|| lib.get("uid"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        unsupported = format!(
            "library panel {name:?}: its definition lives in the Grafana it came from; export the dashboard with \"Export for sharing externally\" to include it"
        );
    } else if !SUPPORTED.contains(&kind.as_str()) {
        unsupported = format!("panel type {kind:?} is not drawn by Sightline");
    } else if let Err(e) = datasource(p.get("datasource"), ctx) {
        unsupported = format!("this panel's data source is {e}");
    }
    let mut html = String::new();
    if kind == "text" {
        let content = options
            .get("content")
            .and_then(Value::as_str)
            .or_else(|| p.get("content").and_then(Value::as_str))
            .unwrap_or("");
        let mode = options
            .get("mode")
            .and_then(Value::as_str)
            .or_else(|| p.get("mode").and_then(Value::as_str))
            .unwrap_or("markdown");
        html = text::render(&interpolate(content, vars, Default::Text), mode);
    }
    let targets = if unsupported.is_empty() && kind != "text" {
        queries(p, vars, w, ctx)
    } else {
        Vec::new()
    };
    let id = p.get("id").map(|v| v.to_string()).unwrap_or_default();
    let (from, to) = panel_range(p, vars, ctx);
    let spec = json!({
        "type": kind,
        "field": defaults,
        "overrides": overrides,
        "options": options,
        "transformations": transformations,
        "targets": targets,
        "range": [from, to],
        "timezone": "",
    });
    PanelView {
        id,
        kind,
        title,
        description,
        x,
        y,
        w,
        h,
        spec: spec.to_string(),
        html,
        unsupported,
    }
}

/// Each query's refId; one without gets the next letter no other query uses, as Grafana gives
/// them (A .. Z, then AA, AB ...).
fn ref_ids(targets: &[Value]) -> Vec<String> {
    let mut used: std::collections::HashSet<String> = targets
        .iter()
        .filter_map(|t| t.get("refId").and_then(Value::as_str))
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    let name = |mut n: usize| {
        let mut s = Vec::new();
        loop {
            s.push(b'A' + (n % 26) as u8);
            if n < 26 {
                break;
            }
            n = n / 26 - 1;
        }
        s.reverse();
        String::from_utf8_lossy(&s).into_owned()
    };
    let mut next = 0;
    targets
        .iter()
        .map(|t| match t.get("refId").and_then(Value::as_str) {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => {
                while used.contains(&name(next)) {
                    next += 1;
                }
                let r = name(next);
                used.insert(r.clone());
                r
            }
        })
        .collect()
}

/// The panel's time range in ms: the dashboard's, moved by the panel's relative time
/// (`timeFrom`) and time shift (`timeShift`) as Grafana moves it. Charts span it whole.
fn panel_range(p: &Value, vars: &Vars, ctx: &Ctx) -> (i64, i64) {
    let mut from = ctx.frame.from_ms;
    let mut to = ctx.frame.to_ms;
    // Relative time and time shift of the panel.
    if let Some(tf) = p.get("timeFrom").and_then(Value::as_str)
        && let Some(ms) = time::parse_interval(&interpolate(tf, vars, Default::Glob))
    {
        from = to - ms;
    }
    if let Some(ts) = p.get("timeShift").and_then(Value::as_str)
        && let Some(ms) = time::parse_interval(&interpolate(ts, vars, Default::Glob))
    {
        from -= ms;
        to -= ms;
    }
    (from, to)
}

/// The panel's queries, interpolated, with Grafana's step and time range.
fn queries(p: &Value, vars: &Vars, w: i64, ctx: &Ctx) -> Vec<Value> {
    let (from, to) = panel_range(p, vars, ctx);
    let range = (to - from).max(1);
    let resolution = num(p.get("maxDataPoints"))
        .map(|v| v as i64)
        .filter(|v| *v > 0)
        .unwrap_or(ASSUMED_WIDTH_PX * w / 24);
    let panel_min = p
        .get("interval")
        .and_then(Value::as_str)
        .and_then(|i| time::parse_interval(&interpolate(i, vars, Default::Glob)));
    let mut out = Vec::new();
    let targets: &[Value] = p
        .get("targets")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let ids = ref_ids(targets);
    for (t, ref_id) in targets.iter().zip(&ids) {
        let ref_id = ref_id.as_str();
        if t.get("hide").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let Some(expr) = t
            .get("expr")
            .and_then(Value::as_str)
            .filter(|e| !e.trim().is_empty())
        else {
            continue;
        };
        if let Err(e) = datasource(t.get("datasource"), ctx) {
            out.push(json!({"refId": ref_id, "error": format!("this query's data source is {e}")}));
            continue;
        }
        let low = t
            .get("interval")
            .and_then(Value::as_str)
            .and_then(|i| time::parse_interval(&interpolate(i, vars, Default::Glob)))
            .or(panel_min)
            .unwrap_or(time::DEFAULT_SCRAPE_MS);
        let factor = num(t.get("intervalFactor"))
            .map(|f| f as i64)
            .filter(|f| *f >= 1)
            .unwrap_or(1);
        let interval = time::calculate_interval(range, resolution, low);
        let safe = (range + 10_999) / 11_000;
        let step = (interval * factor).max(safe).max(1);
        let mut scope = vars.clone();
        scope.insert(
            "__interval".into(),
            VarValue::single(time::format_interval(step)),
        );
        scope.insert("__interval_ms".into(), VarValue::single(step.to_string()));
        scope.insert(
            "__rate_interval".into(),
            VarValue::single(time::format_interval(time::rate_interval(step, low))),
        );
        let range_s = range / 1000;
        scope.insert("__range".into(), VarValue::single(format!("{range_s}s")));
        scope.insert("__range_s".into(), VarValue::single(range_s.to_string()));
        scope.insert("__range_ms".into(), VarValue::single(range.to_string()));
        let q = interpolate(expr, &scope, Default::Prometheus);
        let legend = interpolate(
            t.get("legendFormat").and_then(Value::as_str).unwrap_or(""),
            &scope,
            Default::Glob,
        );
        let instant_flag = t.get("instant").and_then(Value::as_bool) == Some(true);
        let range_flag = t.get("range").and_then(Value::as_bool);
        let instant = instant_flag && range_flag != Some(true);
        let format = t
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("time_series");
        if q.len() > MAX_QUERY_BYTES {
            out.push(json!({"refId": ref_id, "error": format!("the query is {} bytes after interpolation; the limit is {MAX_QUERY_BYTES} (select fewer values)", q.len())}));
            continue;
        }
        out.push(json!({
            "refId": ref_id,
            "expr": q,
            "legend": legend,
            "instant": instant,
            "format": format,
            "start": from - from.rem_euclid(step),
            "end": to - to.rem_euclid(step),
            "time": to,
            "step": step,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(vals: &[(&str, VarValue)]) -> Resolved {
        Resolved {
            values: vals
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Resolved::default()
        }
    }

    const FRAME: Frame = Frame {
        from_ms: 1_700_000_000_000 - 6 * 3_600_000,
        to_ms: 1_700_000_000_000,
    };

    #[test]
    fn rows_repeats_and_queries() {
        let d = json!({
            "__inputs": [{"name": "DS_PROM", "pluginId": "prometheus"}, {"name": "DS_LOKI", "pluginId": "loki"}],
            "panels": [
                {"type": "stat", "id": 1, "title": "top", "gridPos": {"x":0,"y":0,"w":6,"h":4},
                 "datasource": "${DS_PROM}", "maxDataPoints": 100,
                 "targets": [{"expr": "up{job=\"$job\"}[$__rate_interval]", "refId": "A", "instant": true}]},
                {"type": "row", "title": "GPU $gpu", "collapsed": false, "repeat": "gpu", "gridPos": {"x":0,"y":4,"w":24,"h":1}, "panels": []},
                {"type": "graph", "id": 2, "title": "temp", "gridPos": {"x":0,"y":5,"w":12,"h":8},
                 "datasource": "$datasource", "yaxes": [{"format": "celsius"}, {"format": "short"}],
                 "seriesOverrides": [{"alias": "/rx/", "transform": "negative-Y"}],
                 "legend": {"show": true, "values": true, "alignAsTable": true, "min": true, "avg": true, "current": true, "max": false},
                 "tooltip": {"shared": false}, "timeShift": "1h",
                 "targets": [{"expr": "t{gpu=~\"$gpu\"}", "legendFormat": "GPU {{gpu}}", "refId": "A"}, {"expr": "hidden", "hide": true}]},
                {"type": "row", "title": "logs", "collapsed": true, "gridPos": {"x":0,"y":13,"w":24,"h":1},
                 "panels": [{"type": "logs", "id": 3, "gridPos": {"x":0,"y":14,"w":24,"h":8}},
                            {"type": "timeseries", "id": 4, "datasource": {"type": "loki", "uid": "x"}, "gridPos": {"x":0,"y":22,"w":24,"h":8}, "targets": [{"expr": "{a=\"b\"}"}]},
                            {"type": "timeseries", "id": 5, "datasource": "${DS_LOKI}", "gridPos": {"x":0,"y":30,"w":24,"h":8}},
                            {"type": "text", "id": 6, "options": {"content": "# Hi $job <script>x()</script>"}, "gridPos": {"x":0,"y":38,"w":24,"h":3}}]},
                {"type": "stat", "id": 7, "title": "after", "gridPos": {"x":0,"y":14,"w":6,"h":4}, "targets": [{"expr": "up"}]},
            ]
        });
        let gpu = VarValue {
            values: vec!["0".into(), "1".into()],
            texts: vec!["0".into(), "1".into()],
            multi: true,
            custom_all: None,
        };
        let mut r = resolved(&[("job", VarValue::single("node")), ("gpu", gpu)]);
        r.datasource_types
            .push(("datasource".into(), "prometheus".into()));
        let (secs, trunc) = sections(&d, &r, FRAME);
        assert!(trunc.is_none());
        assert_eq!(secs.len(), 5, "top, GPU 0, GPU 1, logs, after");
        assert_eq!(secs[1].title.as_deref(), Some("GPU 0"));
        assert_eq!(secs[2].title.as_deref(), Some("GPU 1"));
        assert!(secs[3].collapsed);
        // A panel after a collapsed row is not folded into it.
        assert_eq!(secs[4].title, None);
        assert!(!secs[4].collapsed);
        assert_eq!(secs[4].panels[0].title, "after");
        let stat: Value = serde_json::from_str(&secs[0].panels[0].spec).unwrap();
        let t = &stat["targets"][0];
        // 6 h over 100 points = 216 s -> 5 m on Grafana's ladder; rate interval 5m15s -> "5m".
        assert_eq!(t["step"], 300_000);
        assert_eq!(t["expr"], "up{job=\"node\"}[5m]");
        assert_eq!(t["instant"], true);
        let g: Value = serde_json::from_str(&secs[1].panels[0].spec).unwrap();
        assert_eq!(g["type"], "timeseries");
        assert_eq!(g["field"]["unit"], "celsius");
        assert_eq!(g["overrides"][0]["properties"][0]["value"], "negative-Y");
        assert_eq!(
            g["targets"].as_array().unwrap().len(),
            1,
            "hidden query dropped"
        );
        assert_eq!(g["targets"][0]["expr"], "t{gpu=~\"0\"}");
        assert_eq!(g["targets"][0]["legend"], "GPU {{gpu}}");
        // The legacy legend's values as calculations, in the legend's key order; an unshared
        // tooltip is a single one; the chart spans the shifted range.
        assert_eq!(
            g["options"]["legend"],
            json!({"showLegend": true, "displayMode": "table", "placement": "bottom", "calcs": ["mean", "lastNotNull", "min"]})
        );
        assert_eq!(g["options"]["tooltip"]["mode"], "single");
        assert_eq!(
            g["range"],
            json!([FRAME.from_ms - 3_600_000, FRAME.to_ms - 3_600_000])
        );
        assert_eq!(stat["range"], json!([FRAME.from_ms, FRAME.to_ms]));
        let logs = &secs[3].panels;
        assert!(
            logs[0].unsupported.contains("\"logs\""),
            "{}",
            logs[0].unsupported
        );
        assert!(
            logs[1].unsupported.contains("Loki"),
            "{}",
            logs[1].unsupported
        );
        assert!(
            logs[2].unsupported.contains("Loki"),
            "{}",
            logs[2].unsupported
        );
        assert!(logs[3].html.contains("<h1>Hi node"), "{}", logs[3].html);
        assert!(!logs[3].html.contains("<script"), "{}", logs[3].html);
        // Positions are relative to the section.
        assert_eq!((logs[1].y, logs[3].y), (8, 24));
    }

    #[test]
    fn angular_table_as_grafana_migrates_it() {
        // Shaped as grafana.com 11074's disk table (Grafana 6): styles per column, a last
        // hidden `/.*/`, "Format as table" queries merged.
        let p = json!({
            "type": "table", "transform": "table",
            "styles": [
                {"pattern": "mountpoint", "type": "string", "alias": "Mounted on"},
                {"pattern": "Value #B", "type": "number", "alias": "Used", "unit": "percent", "decimals": 1,
                 "colorMode": "cell", "thresholds": ["70", "85"], "colors": ["green", "orange", "red"]},
                {"pattern": "/Value/", "type": "number", "unit": "bytes"},
                {"pattern": "/.*/", "type": "hidden"}
            ],
            "targets": [{"expr": "a", "format": "table", "instant": true, "refId": "A"}]
        });
        let n = normalise(&p);
        assert_eq!(n.kind, "table");
        assert_eq!(
            n.transformations,
            vec![json!({"id": "merge", "options": {}})]
        );
        assert_eq!(n.defaults["custom"]["hidden"], true);
        let o = n.overrides.as_array().unwrap();
        // Reversed, so that the first style that matches a column wins as in the old table.
        let names: Vec<&str> = o
            .iter()
            .map(|x| x["matcher"]["options"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["/Value/", "Value #B", "mountpoint"]);
        assert_eq!(o[0]["matcher"]["id"], "byRegexp");
        let used: BTreeMap<&str, &Value> = o[1]["properties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["id"].as_str().unwrap(), &x["value"]))
            .collect();
        assert_eq!(used["displayName"], "Used");
        assert_eq!(used["custom.hidden"], false);
        assert_eq!(used["unit"], "percent");
        assert_eq!(used["custom.displayMode"], "color-background");
        assert_eq!(
            used["thresholds"]["steps"],
            json!([{"color": "green", "value": null}, {"color": "orange", "value": 70.0}, {"color": "red", "value": 85.0}])
        );
        // The default transform of the old table: a row per series and time.
        let plain = normalise(&json!({"type": "table-old", "styles": []}));
        assert_eq!(plain.transformations[0]["id"], "seriesToRows");
    }

    #[test]
    fn ref_ids_as_grafana_gives_them() {
        let t: Vec<Value> = serde_json::from_str(
            r#"[{"expr": "a"}, {"expr": "b", "refId": "A"}, {"expr": "c"}, {"expr": "d", "refId": ""}]"#,
        )
        .unwrap();
        assert_eq!(ref_ids(&t), ["B", "A", "C", "D"]);
        let many: Vec<Value> = (0..28).map(|_| json!({"expr": "x"})).collect();
        let ids = ref_ids(&many);
        assert_eq!(
            (
                ids[0].as_str(),
                ids[25].as_str(),
                ids[26].as_str(),
                ids[27].as_str()
            ),
            ("A", "Z", "AA", "AB")
        );
    }

    #[test]
    fn library_panels_from_elements() {
        let d = json!({
            "__elements": {"lib1": {"uid": "lib1", "name": "Shared CPU", "kind": 1,
                "model": {"type": "stat", "title": "Shared CPU", "targets": [{"expr": "up", "refId": "A"}], "gridPos": {"x": 9, "y": 9, "w": 1, "h": 1}}}},
            "panels": [
                {"id": 7, "gridPos": {"x": 0, "y": 0, "w": 6, "h": 4}, "libraryPanel": {"uid": "lib1", "name": "Shared CPU"}},
                {"id": 8, "gridPos": {"x": 6, "y": 0, "w": 6, "h": 4}, "libraryPanel": {"uid": "missing", "name": "Gone"}},
            ]
        });
        let (secs, _) = sections(&d, &resolved(&[]), FRAME);
        let p = &secs[0].panels;
        assert_eq!(
            (p[0].kind.as_str(), p[0].title.as_str(), p[0].w),
            ("stat", "Shared CPU", 6)
        );
        assert!(p[0].unsupported.is_empty());
        assert!(
            p[1].unsupported.contains("library panel \"Gone\""),
            "{}",
            p[1].unsupported
        );
    }

    #[test]
    fn overlapping_panels_are_moved_apart_and_gaps_closed() {
        let d = json!({"panels": [
            {"type": "stat", "id": 1, "gridPos": {"x":0,"y":0,"w":12,"h":8}},
            {"type": "stat", "id": 2, "gridPos": {"x":0,"y":24,"w":12,"h":8}},
            {"type": "stat", "id": 3, "gridPos": {"x":0,"y":24,"w":12,"h":8}},
            {"type": "stat", "id": 4, "gridPos": {"x":12,"y":30,"w":12,"h":4}},
        ]});
        let (secs, _) = sections(&d, &resolved(&[]), FRAME);
        let pos: Vec<(String, i64, i64)> = secs[0]
            .panels
            .iter()
            .map(|p| (p.id.clone(), p.x, p.y))
            .collect();
        assert_eq!(
            pos,
            vec![
                ("1".into(), 0, 0),
                ("2".into(), 0, 8),
                ("3".into(), 0, 16),
                ("4".into(), 12, 0)
            ]
        );
    }

    #[test]
    fn repeated_panels_push_the_rest_down() {
        let d = json!({"panels": [
            {"type": "stat", "id": 1, "repeat": "g", "repeatDirection": "h", "maxPerRow": 2, "gridPos": {"x":0,"y":0,"w":6,"h":4}, "targets": [{"expr": "x{g=\"$g\"}"}]},
            {"type": "stat", "id": 2, "gridPos": {"x":0,"y":4,"w":6,"h":4}},
        ]});
        let g = VarValue {
            values: vec!["a".into(), "b".into(), "c".into()],
            texts: vec!["a".into(), "b".into(), "c".into()],
            multi: true,
            custom_all: None,
        };
        let (secs, _) = sections(&d, &resolved(&[("g", g)]), FRAME);
        let pos: Vec<(i64, i64, i64)> = secs[0].panels.iter().map(|p| (p.x, p.y, p.w)).collect();
        assert_eq!(pos, vec![(0, 0, 12), (12, 0, 12), (0, 4, 12), (0, 8, 6)]);
        let exprs: Vec<String> = secs[0].panels[..3]
            .iter()
            .map(|p| {
                serde_json::from_str::<Value>(&p.spec).unwrap()["targets"][0]["expr"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(exprs, ["x{g=\"a\"}", "x{g=\"b\"}", "x{g=\"c\"}"]);
    }
}
