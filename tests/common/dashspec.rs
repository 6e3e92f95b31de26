//! The panel specs a Dashboards page carries (`data-spec` attributes), for the dashboard tests
//! and the dashboard benchmark.

#![allow(dead_code)]

/// The `data-spec` JSON of every panel on a dashboard page.
pub fn specs(html: &str) -> Vec<serde_json::Value> {
    html.split("data-spec=\"")
        .skip(1)
        .map(|rest| {
            let raw = &rest[..rest.find('"').expect("a closed attribute")];
            let unescaped = raw
                .replace("&quot;", "\"")
                .replace("&#34;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            serde_json::from_str(&unescaped).expect("a panel spec is JSON")
        })
        .collect()
}
