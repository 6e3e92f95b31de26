//! One trace: the waterfall (data in `trace_data.rs`).

use super::*;

#[derive(Template)]
#[template(path = "trace.html")]
pub struct TraceView {
    pub page: Page,
    pub id: String,
}

pub async fn trace(
    State(st): State<UiState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let Some(tid) = model::parse_trace_id(&id) else {
        return (StatusCode::BAD_REQUEST, "malformed trace id").into_response();
    };
    render(TraceView {
        page: Page::new(&st, &r, format!("Trace {}", hex::encode(tid)), "traces"),
        id: hex::encode(tid),
    })
}
