//! A Grafana dashboard JSON file read into the shape the rest of the module works on: the
//! dashboard object itself (unwrapped from Grafana's API envelope `{"dashboard": ...}`), checked
//! for size and shape, with the pre-5.0 layout (`rows` of panels with `span`s, schema versions
//! below 16) laid out on the 24-column grid as Grafana's own migration does. Everything else
//! stays as the file says; the renderer reads old and new field names alike.

use serde_json::{Map, Value, json};

use super::DashboardError;

/// The largest dashboard file accepted (Node Exporter Full, one of the largest published
/// dashboards, is about 0.5 MB).
pub const MAX_BYTES: usize = 10 << 20;
/// The most panels a dashboard may have, rows and nested panels included.
pub const MAX_PANELS: usize = 1000;

/// A dashboard's grid row is 30 px high with an 8 px margin (Grafana's `GRID_CELL_HEIGHT` and
/// `GRID_CELL_VMARGIN`).
const CELL_PX: f64 = 38.0;

/// Reads a dashboard file: the dashboard object, ready to store and render.
pub fn parse(bytes: &[u8]) -> Result<Value, DashboardError> {
    parse_request(bytes).map(|(d, _)| d)
}

/// As [`parse`], also giving the `overwrite` flag of Grafana's API envelope (false without one),
/// from the one reading of the JSON.
pub fn parse_request(bytes: &[u8]) -> Result<(Value, bool), DashboardError> {
    if bytes.len() > MAX_BYTES {
        return Err(DashboardError::TooLarge(bytes.len()));
    }
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| DashboardError::Json(e.to_string()))?;
    let mut overwrite = false;
    let mut d = match v {
        Value::Object(mut m) => match m.remove("dashboard") {
            Some(Value::Object(inner)) => {
                overwrite = m.get("overwrite").and_then(Value::as_bool) == Some(true);
                inner
            }
            Some(_) => {
                return Err(DashboardError::Shape(
                    "\"dashboard\" must be an object".into(),
                ));
            }
            None => m,
        },
        _ => return Err(DashboardError::Shape("a dashboard is a JSON object".into())),
    };
    if !d.contains_key("panels") && !d.contains_key("rows") {
        return Err(DashboardError::Shape(
            "no \"panels\" (or pre-5.0 \"rows\"): this is not a Grafana dashboard".into(),
        ));
    }
    if let Some(t) = d.get("title")
        && !t.is_string()
    {
        return Err(DashboardError::Shape("\"title\" must be a string".into()));
    }
    if !d.get("title").is_some_and(Value::is_string) {
        d.insert("title".into(), json!("Untitled dashboard"));
    }
    if d.contains_key("rows")
        && d.get("panels")
            .is_none_or(|p| p.as_array().is_none_or(|a| a.is_empty()))
    {
        migrate_rows(&mut d)?;
    }
    let panels = d
        .get("panels")
        .and_then(Value::as_array)
        .ok_or_else(|| DashboardError::Shape("\"panels\" must be a list".into()))?;
    let n = count_panels(panels);
    if n > MAX_PANELS {
        return Err(DashboardError::TooManyPanels(n));
    }
    if let Some(t) = d.get("templating").and_then(|t| t.get("list"))
        && !t.is_array()
    {
        return Err(DashboardError::Shape(
            "\"templating.list\" must be a list".into(),
        ));
    }
    Ok((Value::Object(d), overwrite))
}

fn count_panels(panels: &[Value]) -> usize {
    panels
        .iter()
        .map(|p| {
            1 + p
                .get("panels")
                .and_then(Value::as_array)
                .map_or(0, |a| count_panels(a))
        })
        .sum()
}

/// A dashboard's uid: the file's own if it is a valid one (Grafana's: up to 40 letters, digits,
/// `-` and `_`), else one made from the title.
pub fn uid_of(d: &Value) -> String {
    if let Some(u) = d.get("uid").and_then(Value::as_str)
        && valid_uid(u)
    {
        return u.to_string();
    }
    let title = d
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("dashboard");
    let mut slug: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug.truncate(24);
    let h = xxhash_rust::xxh3::xxh3_64(title.as_bytes());
    format!("{}-{:08x}", slug.trim_matches('-'), h as u32)
}

pub fn valid_uid(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 40
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn title_of(d: &Value) -> String {
    d.get("title")
        .and_then(Value::as_str)
        .unwrap_or("Untitled dashboard")
        .to_string()
}

pub fn tags_of(d: &Value) -> Vec<String> {
    d.get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Row heights: `"250px"`, `250`, `"250"`.
fn px(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(250.0),
        Some(Value::String(s)) => s.trim_end_matches("px").trim().parse().unwrap_or(250.0),
        _ => 250.0,
    }
}

/// Grafana 4's `rows` (each with `panels` sized by `span` out of 12, and a pixel `height`) as
/// 5.0's grid: a row panel per titled row, panels placed left to right, wrapping at 24 columns.
fn migrate_rows(d: &mut Map<String, Value>) -> Result<(), DashboardError> {
    let rows = match d.remove("rows") {
        Some(Value::Array(r)) => r,
        _ => return Err(DashboardError::Shape("\"rows\" must be a list".into())),
    };
    let show_rows = rows.len() > 1
        || rows
            .iter()
            .any(|r| r.get("showTitle").and_then(Value::as_bool).unwrap_or(false));
    let mut out = Vec::new();
    let mut y = 0i64;
    let mut next_id = 10_000i64;
    for row in rows {
        let Value::Object(mut row) = row else {
            continue;
        };
        let h = (px(row.get("height")) / CELL_PX).ceil().max(1.0) as i64;
        let collapsed = row
            .get("collapse")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let panels = match row.remove("panels") {
            Some(Value::Array(p)) => p,
            _ => Vec::new(),
        };
        let mut placed = Vec::new();
        let row_y = y;
        if show_rows {
            y += 1;
        }
        let mut x = 0i64;
        for p in panels {
            let Value::Object(mut p) = p else { continue };
            let span = p.get("span").and_then(Value::as_f64).unwrap_or(12.0);
            let w = ((span * 2.0).round() as i64).clamp(1, 24);
            let ph = match p.get("height") {
                Some(v) => (px(Some(v)) / CELL_PX).ceil().max(1.0) as i64,
                None => h,
            };
            if x + w > 24 {
                x = 0;
                y += h;
            }
            p.insert("gridPos".into(), json!({"x": x, "y": y, "w": w, "h": ph}));
            x += w;
            placed.push(Value::Object(p));
        }
        y += h;
        if show_rows {
            next_id += 1;
            let mut r = Map::new();
            r.insert("type".into(), json!("row"));
            r.insert("id".into(), json!(next_id));
            r.insert(
                "title".into(),
                row.get("title").cloned().unwrap_or(json!("")),
            );
            r.insert("collapsed".into(), json!(collapsed));
            r.insert(
                "gridPos".into(),
                json!({"x": 0, "y": row_y, "w": 24, "h": 1}),
            );
            if let Some(rep) = row.get("repeat") {
                r.insert("repeat".into(), rep.clone());
            }
            if collapsed {
                r.insert("panels".into(), Value::Array(placed));
                out.push(Value::Object(r));
                continue;
            }
            r.insert("panels".into(), json!([]));
            out.push(Value::Object(r));
        }
        out.extend(placed);
    }
    d.insert("panels".into(), Value::Array(out));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_errors() {
        let d = parse(br#"{"dashboard":{"title":"x","uid":"abc","panels":[]},"overwrite":true}"#)
            .unwrap();
        assert_eq!(uid_of(&d), "abc");
        let d = parse(br#"{"title":"GPU / Nodes","panels":[]}"#).unwrap();
        assert!(uid_of(&d).starts_with("gpu---nodes-"), "{}", uid_of(&d));
        let bad: &[(&[u8], &str)] = &[
            (b"[1,2]", "a JSON object"),
            (b"{\"title\":\"x\"", "JSON"),
            (b"{\"title\":\"x\"}", "not a Grafana dashboard"),
            (b"{\"title\":1,\"panels\":[]}", "\"title\""),
            (b"{\"panels\":{}}", "list"),
        ];
        for (b, want) in bad {
            let e = parse(b).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"id": i, "type": "text"}))
            .collect();
        let e = parse(
            serde_json::to_vec(&json!({"panels": many}))
                .unwrap()
                .as_slice(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("1001 panels"), "{e}");
        // Deep nesting is refused by the JSON reader's depth limit, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn pre_5_rows_are_laid_out_on_the_grid() {
        let d = parse(
            br#"{"title":"old","schemaVersion":14,"rows":[
                {"title":"A","height":"250px","panels":[{"id":1,"span":6},{"id":2,"span":6},{"id":3,"span":12}]},
                {"title":"B","collapse":true,"height":300,"panels":[{"id":4,"span":4}]}]}"#,
        )
        .unwrap();
        let p = d["panels"].as_array().unwrap();
        let pos = |i: usize| p[i]["gridPos"].clone();
        assert_eq!(p[0]["type"], "row");
        assert_eq!(pos(1), json!({"x":0,"y":1,"w":12,"h":7}));
        assert_eq!(pos(2), json!({"x":12,"y":1,"w":12,"h":7}));
        assert_eq!(pos(3), json!({"x":0,"y":8,"w":24,"h":7}));
        assert_eq!(p[4]["type"], "row");
        assert_eq!(p[4]["collapsed"], true);
        assert_eq!(p[4]["panels"][0]["gridPos"]["w"], 8);
    }
}
