//! The service map (layout in `ui/map.rs`).

use super::*;

#[derive(Template)]
#[template(path = "map.html")]
pub struct MapView {
    pub page: Page,
    pub map: crate::ui::map::Layout,
}

pub async fn service_map(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let deps = st
        .store
        .dependencies(
            (r.start_ms().max(0) as u64) * 1_000_000,
            (r.end_ms.max(0) as u64) * 1_000_000,
        )
        .await
        .unwrap_or_default();
    let w = format!("{}s", r.secs);
    let t = r.end_ms;
    let pair = |l: &Labels| {
        (
            l.get("client").unwrap_or_default().to_string(),
            l.get("server").unwrap_or_default().to_string(),
        )
    };
    let collect = |v: Vec<(Labels, f64)>| -> BTreeMap<(String, String), f64> {
        v.into_iter().map(|(l, x)| (pair(&l), x)).collect()
    };
    let rate = collect(
        instant(
            &st,
            format!("sum by (client, server) (rate(traces_service_graph_request_total[{w}]))"),
            t,
        )
        .await,
    );
    let failed = collect(instant(&st, format!("sum by (client, server) (rate(traces_service_graph_request_failed_total[{w}])) / sum by (client, server) (rate(traces_service_graph_request_total[{w}]))"), t).await);
    let p95 = collect(instant(&st, format!("histogram_quantile(0.95, sum by (client, server, le) (rate(traces_service_graph_request_server_seconds_bucket[{w}])))"), t).await);
    let edges: Vec<crate::ui::map::Edge> = deps
        .into_iter()
        .map(|(parent, child, calls)| {
            let k = (parent.clone(), child.clone());
            let label = format!(
                "{} calls · {}/s|{} errors · p95 {}",
                calls,
                num(rate.get(&k).copied(), 2, ""),
                num(failed.get(&k).map(|x| x * 100.0), 1, " %"),
                seconds(p95.get(&k).copied())
            );
            crate::ui::map::Edge {
                from: parent,
                to: child,
                label,
                error: failed.get(&k).is_some_and(|x| *x > 0.0),
            }
        })
        .collect();
    let qs = r.qs();
    let map = crate::ui::map::layout(edges, |name| {
        format!("{}/ui/service/{}?{}", st.base, url(name), qs)
    });
    render(MapView {
        page: Page::new(&st, &r, "Service map", "map"),
        map,
    })
}
