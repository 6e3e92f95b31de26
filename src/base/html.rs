//! Escaping for the few pages written by hand rather than by askama (the proxy's gateway errors,
//! the sign-in page).

/// Text safe inside HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
