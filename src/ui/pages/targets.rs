//! The Targets page, Prometheus's Targets page in Sightline's frame: every scrape pool with its
//! active targets (scrape URL, health, final labels, last scrape, its duration, last error) and
//! its dropped targets (discovered labels, folded). `?pool=` shows one pool, `?health=down` only
//! the unhealthy.

use super::*;

pub struct TargetRow {
    pub url: String,
    pub health: &'static str,
    pub labels: String,
    pub discovered: String,
    pub last_scrape: String,
    pub duration: String,
    pub error: String,
}

pub struct PoolRow {
    pub name: String,
    pub up: usize,
    pub total: usize,
    pub active: Vec<TargetRow>,
    pub dropped: Vec<String>,
}

#[derive(Template)]
#[template(path = "targets.html")]
pub struct TargetsView {
    pub page: Page,
    pub pools: Vec<PoolRow>,
    pub only_down: bool,
}

fn label_text(l: &crate::scrape::relabel::LabelMap) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn targets(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let only_pool = p.get("pool").unwrap_or("").to_string();
    let only_down = p.get("health") == Some("down");
    let snap = st.targets.snapshot();
    let mut pools: BTreeMap<String, PoolRow> = BTreeMap::new();
    let now = now_ms();
    let row = |name: &str| PoolRow {
        name: name.to_string(),
        up: 0,
        total: 0,
        active: Vec::new(),
        dropped: Vec::new(),
    };
    for t in &snap.active {
        let pool = pools.entry(t.pool.clone()).or_insert_with(|| row(&t.pool));
        pool.total += 1;
        let health = if t.health.health.is_empty() {
            "unknown"
        } else {
            t.health.health
        };
        if health == "up" {
            pool.up += 1;
        }
        if only_down && health == "up" {
            continue;
        }
        pool.active.push(TargetRow {
            url: t.url.clone(),
            health,
            labels: label_text(&t.labels),
            discovered: label_text(&t.discovered),
            last_scrape: if t.health.last_scrape_ms == 0 {
                "never".into()
            } else {
                format!(
                    "{:.1} s ago",
                    (now - t.health.last_scrape_ms) as f64 / 1000.0
                )
            },
            duration: format!("{:.1} ms", t.health.last_duration_s * 1000.0),
            error: t.health.last_error.clone(),
        });
    }
    for d in &snap.dropped {
        pools
            .entry(d.pool.clone())
            .or_insert_with(|| row(&d.pool))
            .dropped
            .push(label_text(&d.discovered));
    }
    let pools = pools
        .into_values()
        .filter(|p| only_pool.is_empty() || p.name == only_pool)
        .collect();
    render(TargetsView {
        page: Page::new(&st, &r, "Targets", "targets"),
        pools,
        only_down,
    })
}
