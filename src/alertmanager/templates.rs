//! Notification templates: Sightline's defaults (`default.tmpl`, the names and text of
//! Alertmanager 0.25's), then the files `templates:` names (globs, later definitions win), and
//! the data a notification's templates see, shaped as Alertmanager's `template.Data`.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::template::{TemplateSet, Value};

use super::alert::{Alert, fingerprint_text};
use super::matcher::LabelSet;

const DEFAULTS: &str = include_str!("default.tmpl");

/// Largest template file read.
const MAX_FILE: u64 = 1 << 20;

pub struct Templates {
    set: TemplateSet,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// The defaults plus every file matching the globs.
    pub fn load(globs: &[String]) -> Result<Templates, String> {
        let mut set = TemplateSet::default();
        set.add("default.tmpl", DEFAULTS)
            .map_err(|e| e.to_string())?;
        for g in globs {
            let paths = glob::glob(g).map_err(|e| format!("{g}: {e}"))?;
            for p in paths.flatten() {
                let meta = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                if meta.len() > MAX_FILE {
                    return Err(format!("{}: larger than {MAX_FILE} bytes", p.display()));
                }
                let text =
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                set.add(&name, &text).map_err(|e| e.to_string())?;
            }
        }
        Ok(Templates { set })
    }

    pub fn text(&self, text: &str, data: &Value) -> Result<String, String> {
        self.set
            .execute(text, data, false)
            .map_err(|e| e.to_string())
    }

    pub fn html(&self, text: &str, data: &Value) -> Result<String, String> {
        self.set
            .execute(text, data, true)
            .map_err(|e| e.to_string())
    }
}

/// Go's `regexp.QuoteMeta` (Alertmanager quotes the receiver name in template data).
pub(super) fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn kv(m: &LabelSet) -> Value {
    Value::str_map(m)
}

/// Go's `time.Time.String()` for a UTC time.
fn go_time(ns: i64) -> String {
    if ns == 0 {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    }
    crate::base::clock::go_time_text(ns, ' ', " +0000 UTC")
}

/// The labels (or annotations) every alert shares, with the same value.
pub(super) fn common(alerts: &[Alert], f: impl Fn(&Alert) -> &LabelSet) -> LabelSet {
    let Some(first) = alerts.first() else {
        return LabelSet::new();
    };
    let mut c = f(first).clone();
    for a in &alerts[1..] {
        c.retain(|k, v| f(a).get(k) == Some(v));
    }
    c
}

/// Alertmanager's `template.Data` for a notification of `alerts` (the receiver name quoted as
/// Alertmanager quotes it).
pub fn data(
    receiver: &str,
    group_labels: &LabelSet,
    alerts: &[Alert],
    external_url: &str,
    now: i64,
) -> Value {
    let status = if alerts.iter().any(|a| !a.resolved_at(now)) {
        "firing"
    } else {
        "resolved"
    };
    let list: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let mut m = BTreeMap::new();
            m.insert("Status".to_string(), Value::Str(a.status(now).into()));
            m.insert("Labels".to_string(), kv(&a.labels));
            m.insert("Annotations".to_string(), kv(&a.annotations));
            m.insert("StartsAt".to_string(), Value::Str(go_time(a.starts_at)));
            let end = if a.resolved_at(now) { a.ends_at } else { 0 };
            m.insert("EndsAt".to_string(), Value::Str(go_time(end)));
            m.insert(
                "GeneratorURL".to_string(),
                Value::Str(a.generator_url.clone()),
            );
            m.insert(
                "Fingerprint".to_string(),
                Value::Str(fingerprint_text(a.fingerprint())),
            );
            Value::Map(Rc::new(m))
        })
        .collect();
    let mut d = BTreeMap::new();
    d.insert("Receiver".to_string(), Value::Str(quote_meta(receiver)));
    d.insert("Status".to_string(), Value::Str(status.into()));
    d.insert("Alerts".to_string(), Value::List(Rc::new(list)));
    d.insert("GroupLabels".to_string(), kv(group_labels));
    d.insert(
        "CommonLabels".to_string(),
        kv(&common(alerts, |a| &a.labels)),
    );
    d.insert(
        "CommonAnnotations".to_string(),
        kv(&common(alerts, |a| &a.annotations)),
    );
    d.insert("ExternalURL".to_string(), Value::Str(external_url.into()));
    Value::Map(Rc::new(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)], ends: i64) -> Alert {
        Alert {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), "disk <full>".to_string())].into(),
            starts_at: 1_000_000_000,
            ends_at: ends,
            generator_url: "http://prom/graph".into(),
            updated_at: 0,
            timeout: false,
        }
    }

    #[test]
    fn default_subject_and_lists_read_as_alertmanagers() {
        let t = Templates::load(&[]).unwrap();
        let gl: LabelSet = [("alertname".to_string(), "DiskFull".to_string())].into();
        let alerts = vec![
            alert(
                &[
                    ("alertname", "DiskFull"),
                    ("instance", "a"),
                    ("job", "node"),
                ],
                0,
            ),
            alert(
                &[
                    ("alertname", "DiskFull"),
                    ("instance", "b"),
                    ("job", "node"),
                ],
                5,
            ),
        ];
        let d = data("team-x", &gl, &alerts, "http://am:9093", 10);
        assert_eq!(
            t.text(r#"{{ template "email.default.subject" . }}"#, &d)
                .unwrap(),
            "[FIRING:1] DiskFull (node)"
        );
        assert_eq!(
            t.text(r#"{{ template "slack.default.fallback" . }}"#, &d)
                .unwrap(),
            "[FIRING:1] DiskFull (node) | http://am:9093/#/alerts?receiver=team-x"
        );
        let list = t
            .text(
                r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
                &d,
            )
            .unwrap();
        assert_eq!(
            list,
            "Labels:\n - alertname = DiskFull\n - instance = a\n - job = node\nAnnotations:\n - summary = disk <full>\nSource: http://prom/graph\n"
        );
        // HTML mode escapes values, not the template's own markup.
        let html = t
            .html(r#"{{ template "email.default.html" . }}"#, &d)
            .unwrap();
        assert!(html.contains("summary = disk &lt;full&gt;"), "{html}");
        assert!(html.contains("<h3>[1] Firing</h3>"));
        // User templates define and override names.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("my.tmpl"),
            r#"{{ define "slack.default.title" }}custom {{ .CommonLabels.job }}{{ end }}"#,
        )
        .unwrap();
        let g = format!("{}/*.tmpl", dir.path().display());
        let t = Templates::load(&[g]).unwrap();
        assert_eq!(
            t.text(r#"{{ template "slack.default.title" . }}"#, &d)
                .unwrap(),
            "custom node"
        );
        assert!(t.text(r#"{{ template "nope" . }}"#, &d).is_err());
    }
}
