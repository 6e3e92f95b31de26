//! The login page, logout, and what an unauthenticated request gets: browsers asking for a page
//! are sent to the login page (and back afterwards, to a path under `base_path` only, never to
//! another site); API clients get 401 with `WWW-Authenticate: Basic`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::{Auth, CSRF_COOKIE, SESSION_COOKIE, cookie, random_token, same};

use crate::base::html::escape;

/// Only a local path under the base path may be a redirect target.
fn safe_next(base: &str, next: &str) -> String {
    let ok = next.starts_with(&format!("{base}/"))
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.contains("://")
        && next.bytes().all(|b| b > 0x20 && b != 0x7f);
    if ok {
        next.to_string()
    } else {
        format!("{base}/ui/")
    }
}

fn page(base: &str, csrf: &str, next: &str, error: &str, status: StatusCode) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in - Sightline</title>\
<link rel=\"stylesheet\" href=\"{b}/ui/assets/app.css\"></head><body><main class=\"login\">\
<h1>Sightline</h1>{err}<form method=\"post\" action=\"{b}/ui/login\">\
<input type=\"hidden\" name=\"csrf\" value=\"{c}\"><input type=\"hidden\" name=\"next\" value=\"{n}\">\
<label>User <input name=\"username\" autocomplete=\"username\" required autofocus></label>\
<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">Sign in</button></form></main></body></html>\n",
        b = escape(base),
        c = escape(csrf),
        n = escape(next),
        err = if error.is_empty() {
            String::new()
        } else {
            format!(
                "<p class=\"error\" id=\"login-error\">{}</p>",
                escape(error)
            )
        },
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        .body(Body::from(body))
        .unwrap_or_default()
}

/// GET: the form (with a fresh double-submit CSRF cookie); POST: check it and sign in.
pub async fn login(auth: &Auth, base: &str, req: Request) -> Response {
    let query_next = req
        .uri()
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    if req.method() != Method::POST {
        let token = random_token();
        let mut r = page(
            base,
            &token,
            &safe_next(base, &query_next),
            "",
            StatusCode::OK,
        );
        if let Ok(v) = HeaderValue::from_str(&auth.set_cookie(CSRF_COOKIE, &token, None, "Strict"))
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        return r;
    }
    let cookie_token = cookie(req.headers(), CSRF_COOKIE).unwrap_or("").to_string();
    let body = match http_body_util::Limited::new(req.into_body(), 16 << 10)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "login form too large\n").into_response(),
    };
    let mut fields = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        fields.insert(k.into_owned(), v.into_owned());
    }
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let next = safe_next(base, get("next"));
    if cookie_token.is_empty() || !same(cookie_token.as_bytes(), get("csrf").as_bytes()) {
        let token = random_token();
        let mut r = page(
            base,
            &token,
            &next,
            "The form expired; please sign in again.",
            StatusCode::FORBIDDEN,
        );
        if let Ok(v) = HeaderValue::from_str(&auth.set_cookie(CSRF_COOKIE, &token, None, "Strict"))
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        return r;
    }
    match auth.login(get("username"), get("password")) {
        Some((session, _)) => {
            let ttl = auth.cfg.session_ttl.as_secs();
            let mut r = Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, next)
                .header(header::CACHE_CONTROL, "no-store")
                .body(Body::empty())
                .unwrap_or_default();
            for c in [
                auth.set_cookie(SESSION_COOKIE, &session, Some(ttl), "Lax"),
                auth.set_cookie(CSRF_COOKIE, "", Some(0), "Strict"),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            r
        }
        None => {
            tracing::warn!(user = %get("username"), "sign-in refused");
            let token = random_token();
            let mut r = page(
                base,
                &token,
                &next,
                "Wrong user or password.",
                StatusCode::UNAUTHORIZED,
            );
            if let Ok(v) =
                HeaderValue::from_str(&auth.set_cookie(CSRF_COOKIE, &token, None, "Strict"))
            {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
    }
}

/// POST with the session's CSRF token: ends the session.
pub async fn logout(auth: &Auth, base: &str, req: Request) -> Response {
    if req.method() != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "sign out with POST\n",
        )
            .into_response();
    }
    let headers = req.headers().clone();
    let Some(id) = auth.identify(&headers).filter(|i| i.by_cookie) else {
        return unauthenticated(base, &req);
    };
    let body = http_body_util::Limited::new(req.into_body(), 16 << 10)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !same(token.as_bytes(), id.csrf.as_bytes()) {
        return (StatusCode::FORBIDDEN, "cross-site sign-out refused\n").into_response();
    }
    auth.logout(&headers);
    let mut r = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, format!("{base}/ui/login"))
        .body(Body::empty())
        .unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&auth.set_cookie(SESSION_COOKIE, "", Some(0), "Lax")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// 303 to the login page for a browser asking for a page; 401 for everyone else.
pub fn unauthenticated(base: &str, req: &Request) -> Response {
    let html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if html && req.method() == Method::GET {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &safe_next(base, &next))
            .finish();
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, format!("{base}/ui/login?{q}"))
            .body(Body::empty())
            .unwrap_or_default();
    }
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"Sightline\", charset=\"UTF-8\""),
            (header::CONTENT_TYPE, "application/json"),
        ],
        "{\"status\":\"error\",\"errorType\":\"unauthorized\",\"error\":\"authentication required: sign in, or send basic auth or a bearer token\"}\n",
    )
        .into_response()
}
