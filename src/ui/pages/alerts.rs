//! The Alerts page: firing and pending alerts (labels, annotations, since when, value) and every
//! rule group with its health, last evaluation and last error; each rule links to the metrics
//! explorer with its expression. With the built-in Alertmanager: its notification groups (each
//! alert with a link that opens the silence form with its labels), silences (expire one; a new
//! one previewed against the alerts it would match before it is saved) and every receiver
//! integration's last delivery and error.

use super::*;
use crate::rules::alert::AlertState;
use crate::rules::group::Health;

/// One pending or firing alert.
pub struct AlertRow {
    pub name: String,
    pub state: &'static str,
    pub labels: String,
    pub annotations: Vec<(String, String)>,
    pub since: String,
    pub value: String,
}

/// One rule of a group.
pub struct RuleRow {
    pub kind: &'static str,
    pub name: String,
    pub query: String,
    pub explore: String,
    pub health: &'static str,
    pub state: &'static str,
    pub last_error: String,
    pub last_eval: String,
    pub alerts: usize,
}

pub struct GroupRow {
    pub name: String,
    pub file: String,
    pub interval: String,
    pub last_eval: String,
    pub duration: String,
    pub health: &'static str,
    pub rules: Vec<RuleRow>,
}

/// One alert of a notification group.
pub struct AmAlertRow {
    pub labels: String,
    pub state: &'static str,
    pub summary: String,
    pub since: String,
    /// `/ui/alerts?silence=...` with the alert's labels.
    pub silence_link: String,
}

pub struct AmGroupRow {
    pub receiver: String,
    pub labels: String,
    pub alerts: Vec<AmAlertRow>,
}

pub struct SilenceRow {
    pub id: String,
    pub state: &'static str,
    pub matchers: String,
    pub created_by: String,
    pub comment: String,
    pub starts: String,
    pub ends: String,
}

pub struct DeliveryRow {
    pub integration: String,
    pub at: String,
    pub error: String,
}

/// The built-in Alertmanager's part of the page.
pub struct AmView {
    pub groups: Vec<AmGroupRow>,
    pub silences: Vec<SilenceRow>,
    pub deliveries: Vec<DeliveryRow>,
    pub receivers: Vec<String>,
    /// The silence form: matchers text, and what they match now (preview).
    pub form_matchers: String,
    pub form_error: String,
    pub preview: Option<Vec<String>>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
pub struct AlertsView {
    pub page: Page,
    pub firing: usize,
    pub pending: usize,
    pub alerts: Vec<AlertRow>,
    pub groups: Vec<GroupRow>,
    pub am: Option<AmView>,
}

fn labels_line(ls: &std::collections::BTreeMap<String, String>) -> String {
    ls.iter()
        .map(|(k, v)| format!("{k}={}", lit(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn am_view(am: &crate::alertmanager::Alertmanager, base: &str, p: &Params) -> AmView {
    use crate::alertmanager::matcher::{LabelSet, parse_matchers};
    let now = crate::base::clock::now_ns() as i64;
    let mut groups = Vec::new();
    for (labels, receiver, alerts) in am.groups() {
        let rows: Vec<AmAlertRow> = alerts
            .iter()
            .filter(|a| !a.resolved_at(now))
            .map(|a| {
                let (state, _, _) = am.status(&a.labels, now);
                let m: String = a
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", lit(v)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let q: String =
                    form_urlencoded::byte_serialize(format!("{{{m}}}").as_bytes()).collect();
                AmAlertRow {
                    labels: labels_line(&a.labels),
                    state,
                    summary: a
                        .annotations
                        .get("summary")
                        .or_else(|| a.annotations.get("description"))
                        .cloned()
                        .unwrap_or_default(),
                    since: ago(a.starts_at),
                    silence_link: format!("{base}/ui/alerts?silence={q}#new-silence"),
                }
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        groups.push(AmGroupRow {
            receiver,
            labels: labels_line(&labels),
            alerts: rows,
        });
    }
    let mut sil = am.silences();
    sil.sort_by_key(|s| (s.state(now), std::cmp::Reverse(s.ends_at)));
    let silences = sil
        .iter()
        .map(|s| SilenceRow {
            id: s.id.clone(),
            state: s.state(now).as_str(),
            matchers: crate::alertmanager::matcher::matchers_text(&s.matchers),
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
            starts: iso_ms(s.starts_at / 1_000_000),
            ends: iso_ms(s.ends_at / 1_000_000),
        })
        .collect();
    let deliveries = am
        .deliveries()
        .into_iter()
        .map(|(k, d)| DeliveryRow {
            integration: k,
            at: ago(d.at),
            error: d.error.unwrap_or_default(),
        })
        .collect();
    let form_matchers = p.get("silence").unwrap_or("").to_string();
    let mut form_error = p.get("silence_error").unwrap_or("").to_string();
    let preview = if form_matchers.trim().is_empty() {
        None
    } else {
        match parse_matchers(&form_matchers) {
            Ok(ms) => Some(
                am.alerts()
                    .iter()
                    .filter(|a| !a.resolved_at(now))
                    .filter(|a| ms.iter().all(|m| m.matches_set(&a.labels as &LabelSet)))
                    .map(|a| labels_line(&a.labels))
                    .collect(),
            ),
            Err(e) => {
                form_error = e;
                None
            }
        }
    };
    AmView {
        groups,
        silences,
        deliveries,
        receivers: am.receiver_names(),
        form_matchers,
        form_error,
        preview,
    }
}

/// `POST /ui/alerts/silences`: a new silence from the form (matchers, duration, author,
/// comment); back to the page, with the reason when it was refused.
pub async fn create_silence(State(st): State<UiState>, body: axum::body::Bytes) -> Response {
    let Some(am) = st.alertmanager.clone() else {
        return (StatusCode::NOT_FOUND, "no built-in alertmanager\n").into_response();
    };
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let back = |err: &str, m: &str| {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("silence", m)
            .append_pair("silence_error", err)
            .finish();
        axum::response::Redirect::to(&format!("{}/ui/alerts?{q}#new-silence", st.base))
            .into_response()
    };
    let text = get("silence");
    let matchers = match crate::alertmanager::matcher::parse_matchers(&text) {
        Ok(m) if !m.is_empty() => m,
        Ok(_) => return back("at least one matcher required", &text),
        Err(e) => return back(&e, &text),
    };
    let Some(d) =
        crate::base::units::parse_prom_duration(get("duration").trim()).filter(|d| *d > 0)
    else {
        return back("duration: expected a duration such as 2h or 30m", &text);
    };
    let now = crate::base::clock::now_ns() as i64;
    let author = match get("created_by").trim() {
        "" => "sightline-ui".to_string(),
        a => a.to_string(),
    };
    let s = crate::alertmanager::silence::Silence {
        id: String::new(),
        matchers,
        starts_at: now,
        ends_at: now + d * 1_000_000,
        updated_at: 0,
        created_by: author,
        comment: get("comment"),
    };
    match tokio::task::spawn_blocking(move || am.set_silence(s)).await {
        Ok(Ok(_)) => {
            axum::response::Redirect::to(&format!("{}/ui/alerts#silences", st.base)).into_response()
        }
        Ok(Err(e)) => back(&e.to_string(), &text),
        Err(_) => back("internal error", &text),
    }
}

/// `POST /ui/alerts/silences/expire`: expires the silence named in the form.
pub async fn expire_silence(State(st): State<UiState>, body: axum::body::Bytes) -> Response {
    let Some(am) = st.alertmanager.clone() else {
        return (StatusCode::NOT_FOUND, "no built-in alertmanager\n").into_response();
    };
    let id = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let _ = tokio::task::spawn_blocking(move || am.expire_silence(&id)).await;
    axum::response::Redirect::to(&format!("{}/ui/alerts#silences", st.base)).into_response()
}

fn ago(ns: i64) -> String {
    if ns == 0 {
        return "never".into();
    }
    let s = (crate::base::clock::now_ns() as i64 - ns).max(0) / 1_000_000_000;
    let t = iso_ms(ns / 1_000_000);
    if s < 120 {
        format!("{t} ({s} s ago)")
    } else if s < 7200 {
        format!("{t} ({} min ago)", s / 60)
    } else {
        format!("{t} ({} h ago)", s / 3600)
    }
}

pub async fn alerts(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let mut alerts = Vec::new();
    let mut groups = Vec::new();
    for g in st.rules.as_ref().map(|m| m.groups()).unwrap_or_default() {
        let g = g.lock();
        let mut rules = Vec::new();
        let mut bad = false;
        for rule in &g.rules {
            bad |= rule.health == Health::Bad;
            let shown = rule.alerts.shown();
            for a in &shown {
                alerts.push(AlertRow {
                    name: rule.spec.name.clone(),
                    state: a.state.name(),
                    labels: a
                        .labels
                        .iter()
                        .filter(|l| l.name != "alertname")
                        .map(|l| format!("{}={}", l.name, lit(&l.value)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    annotations: a.annotations.clone(),
                    since: ago(a.active_at),
                    value: crate::base::gofmt::float(a.value, crate::base::gofmt::FloatStyle::G),
                });
            }
            let q: String = form_urlencoded::byte_serialize(rule.query.as_bytes()).collect();
            rules.push(RuleRow {
                kind: if rule.spec.kind == crate::rules::RuleKind::Alert {
                    "alert"
                } else {
                    "record"
                },
                name: rule.spec.name.clone(),
                explore: format!("{}/ui/explore?q={q}", st.base),
                query: rule.query.clone(),
                health: rule.health.name(),
                state: if rule.spec.kind == crate::rules::RuleKind::Alert {
                    rule.alerts.state().name()
                } else {
                    ""
                },
                last_error: rule.last_error.clone().unwrap_or_default(),
                last_eval: ago(rule.last_eval_wall),
                alerts: shown.len(),
            });
        }
        groups.push(GroupRow {
            name: g.name.clone(),
            file: g.file.clone(),
            interval: crate::promql::ast::format_duration(g.interval_ns / 1_000_000),
            last_eval: ago(g.last_eval_wall),
            duration: format!("{:.1} ms", g.eval_seconds * 1000.0),
            health: if bad {
                "err"
            } else if g.evaluations == 0 {
                "unknown"
            } else {
                "ok"
            },
            rules,
        });
    }
    // Firing first, then pending; newest first within each.
    alerts.sort_by(|a, b| b.state.cmp(a.state).then(b.since.cmp(&a.since)));
    let firing = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing.name())
        .count();
    let am = match st.alertmanager.clone() {
        Some(am) => {
            let base = st.base.clone();
            let p2 = p.clone();
            tokio::task::spawn_blocking(move || am_view(&am, &base, &p2))
                .await
                .ok()
        }
        None => None,
    };
    render(AlertsView {
        page: Page::new(&st, &r, "Alerts", "alerts"),
        pending: alerts.len() - firing,
        firing,
        alerts,
        groups,
        am,
    })
}
