//! The metrics explorer: a PromQL query as a chart or a table.

use super::*;

#[derive(Template)]
#[template(path = "explore.html")]
pub struct ExploreView {
    pub page: Page,
    pub query: String,
    pub view: String,
    pub error: String,
    pub rows: Vec<(String, String)>,
    pub charts: Vec<Chart>,
}

pub async fn explore(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let query = p.get("q").unwrap_or("").to_string();
    let view = if p.get("view") == Some("table") {
        "table"
    } else {
        "graph"
    }
    .to_string();
    let mut error = String::new();
    let mut rows = Vec::new();
    if !query.is_empty() {
        match crate::promql::parse(&query) {
            Err(e) => error = e.to_string(),
            Ok(_) if view == "table" => {
                for (l, v) in instant(&st, query.clone(), r.end_ms).await {
                    rows.push((
                        labels_text(&l),
                        crate::base::gofmt::float(v, crate::base::gofmt::FloatStyle::F),
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    render(ExploreView {
        charts: vec![chart("explore-chart", &query, "", &[("", query.clone())])],
        page: Page::new(&st, &r, "Explore metrics", "explore"),
        query,
        view,
        error,
        rows,
    })
}

pub(super) fn labels_text(l: &Labels) -> String {
    let name = l.metric_name().unwrap_or_default();
    let rest: Vec<String> = l
        .iter()
        .filter(|x| x.name != "__name__")
        .map(|x| format!("{}={}", x.name, lit(&x.value)))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}
