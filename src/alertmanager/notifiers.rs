//! Receivers' integrations: the HTTP client each builds from its `http_config`, the
//! notification data Alertmanager's templates and webhook payload carry, retries with
//! exponential backoff (500 ms doubling by 1.5 up to 60 s, jittered) until the flush's deadline,
//! and Alertmanager's rule for what is retried: transport errors and 5xx, not 4xx.

use std::time::Duration;

use super::Counters;
use super::alert::{Alert, fingerprint_text};
use super::config::{HttpConfig, Integration, Spec};
use super::matcher::LabelSet;

/// What one notification is about.
pub struct Data<'a> {
    pub receiver: &'a str,
    pub group_key: &'a str,
    pub group_labels: &'a LabelSet,
    /// The alerts this integration sends (resolved ones left out without `send_resolved`).
    pub alerts: &'a [Alert],
    /// Every alert of the flush (the group's status is computed from these).
    pub all_alerts: &'a [Alert],
    pub now: i64,
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

fn common(alerts: &[Alert], f: impl Fn(&Alert) -> &LabelSet) -> LabelSet {
    let Some(first) = alerts.first() else {
        return LabelSet::new();
    };
    let mut c = f(first).clone();
    for a in &alerts[1..] {
        c.retain(|k, v| f(a).get(k) == Some(v));
    }
    c
}

impl Data<'_> {
    /// Alertmanager's template data (`template.Data`) as JSON, with the webhook's fields.
    pub fn to_json(&self, external_url: &str) -> serde_json::Map<String, serde_json::Value> {
        let now = self.now;
        let status = if self.all_alerts.iter().any(|a| !a.resolved_at(now)) {
            "firing"
        } else {
            "resolved"
        };
        let alerts: Vec<serde_json::Value> = self
            .alerts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "status": a.status(now),
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": super::rfc3339(a.starts_at),
                    "endsAt": super::rfc3339(if a.resolved_at(now) { a.ends_at } else { 0 }),
                    "generatorURL": a.generator_url,
                    "fingerprint": fingerprint_text(a.fingerprint()),
                })
            })
            .collect();
        let mut m = serde_json::Map::new();
        m.insert("receiver".into(), quote_meta(self.receiver).into());
        m.insert("status".into(), status.into());
        m.insert("alerts".into(), alerts.into());
        m.insert("groupLabels".into(), serde_json::json!(self.group_labels));
        m.insert(
            "commonLabels".into(),
            serde_json::json!(common(self.alerts, |a| &a.labels)),
        );
        m.insert(
            "commonAnnotations".into(),
            serde_json::json!(common(self.alerts, |a| &a.annotations)),
        );
        m.insert("externalURL".into(), external_url.into());
        m
    }
}

pub struct Notifier {
    receiver: String,
    kind: &'static str,
    index: usize,
    send_resolved: bool,
    spec: Spec,
    client: reqwest::Client,
    auth: Auth,
    external_url: String,
}

enum Auth {
    None,
    Basic(String, Option<String>, Option<String>),
    Header(String, Option<String>, Option<String>),
}

fn build_client(h: &HttpConfig) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!(
            "Sightline-Alertmanager/",
            env!("CARGO_PKG_VERSION")
        ));
    if h.follow_redirects == Some(false) {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    let t = &h.tls_config;
    if let Some(ca) = t.ca_file.as_deref().filter(|s| !s.is_empty()) {
        let pem =
            std::fs::read(ca).map_err(|e| format!("unable to load specified CA cert {ca}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("unable to use specified CA cert {ca}: {e}"))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let (Some(cert), Some(key)) = (
        t.cert_file.as_deref().filter(|s| !s.is_empty()),
        t.key_file.as_deref().filter(|s| !s.is_empty()),
    ) {
        let mut pem = std::fs::read(cert).map_err(|e| format!("unable to read {cert}: {e}"))?;
        pem.extend(std::fs::read(key).map_err(|e| format!("unable to read {key}: {e}"))?);
        let id =
            reqwest::Identity::from_pem(&pem).map_err(|e| format!("client certificate: {e}"))?;
        b = b.identity(id);
    }
    if t.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    if let Some(p) = h.proxy_url.as_deref().filter(|s| !s.is_empty()) {
        b = b.proxy(reqwest::Proxy::all(p).map_err(|e| format!("proxy_url: {e}"))?);
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn read_secret(inline: &Option<String>, file: &Option<String>) -> Result<Option<String>, String> {
    if let Some(f) = file.as_deref().filter(|s| !s.is_empty()) {
        return std::fs::read_to_string(f)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("unable to read {f}: {e}"));
    }
    Ok(inline.clone().filter(|s| !s.is_empty()))
}

impl Notifier {
    pub fn new(receiver: &str, i: &Integration, external_url: &str) -> Result<Notifier, String> {
        let h = &i.http;
        let auth = if let Some(b) = &h.basic_auth {
            Auth::Basic(
                b.username.clone(),
                b.password.clone(),
                b.password_file.clone(),
            )
        } else if let Some(a) = &h.authorization {
            Auth::Header(
                a.kind
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "Bearer".into()),
                a.credentials.clone(),
                a.credentials_file.clone(),
            )
        } else if h.bearer_token.is_some() || h.bearer_token_file.is_some() {
            Auth::Header(
                "Bearer".into(),
                h.bearer_token.clone(),
                h.bearer_token_file.clone(),
            )
        } else {
            Auth::None
        };
        Ok(Notifier {
            receiver: receiver.to_string(),
            kind: i.kind,
            index: i.index,
            send_resolved: i.send_resolved,
            spec: i.spec.clone(),
            client: build_client(h)?,
            auth,
            external_url: external_url.to_string(),
        })
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, String> {
        Ok(match &self.auth {
            Auth::None => rb,
            Auth::Basic(u, p, pf) => rb.basic_auth(u, read_secret(p, pf)?),
            Auth::Header(kind, c, cf) => match read_secret(c, cf)? {
                Some(tok) => rb.header("Authorization", format!("{kind} {tok}")),
                None => rb,
            },
        })
    }

    /// One attempt: Ok, or Err(retry?, reason).
    async fn attempt(&self, data: &Data<'_>) -> Result<(), (bool, String)> {
        match &self.spec {
            Spec::Webhook { url, max_alerts } => {
                let max = *max_alerts as usize;
                let (sent, truncated) = if max != 0 && data.alerts.len() > max {
                    (&data.alerts[..max], data.alerts.len() - max)
                } else {
                    (data.alerts, 0)
                };
                let d = Data {
                    alerts: sent,
                    ..*data
                };
                let mut body = d.to_json(&self.external_url);
                body.insert("version".into(), "4".into());
                body.insert("groupKey".into(), data.group_key.into());
                body.insert("truncatedAlerts".into(), truncated.into());
                let rb = self
                    .client
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(serde_json::Value::Object(body).to_string());
                let rb = self.authorize(rb).map_err(|e| (false, e))?;
                let resp = rb
                    .send()
                    .await
                    .map_err(|e| (true, redact(&e.to_string(), url)))?;
                check_status(resp, url).await
            }
            _ => Err((
                false,
                format!(
                    "{} notifications are not built yet in Sightline (they need notification templates)",
                    self.kind
                ),
            )),
        }
    }

    /// Notifies with retries until it succeeds, fails for good, or the caller's deadline ends
    /// the future.
    pub async fn notify_with_retries(
        &self,
        data: &Data<'_>,
        counters: &Counters,
    ) -> Result<(), String> {
        bump(counters, self.kind, 0);
        let mut delay = Duration::from_millis(500);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            bump(counters, self.kind, 2);
            match self.attempt(data).await {
                Ok(()) => {
                    if attempts > 1 {
                        tracing::info!(receiver = %self.receiver, integration = self.kind, attempts, "notify success");
                    }
                    return Ok(());
                }
                Err((retry, msg)) => {
                    bump(counters, self.kind, 3);
                    if !retry {
                        bump(counters, self.kind, 1);
                        return Err(format!(
                            "{}/{}[{}]: notify retry canceled due to unrecoverable error after {attempts} attempts: {msg}",
                            self.receiver, self.kind, self.index
                        ));
                    }
                    tracing::warn!(receiver = %self.receiver, integration = self.kind, attempts, error = %msg, "notify attempt failed, will retry later");
                    let jitter = 0.5 + fastrand::f64();
                    tokio::time::sleep(delay.mul_f64(jitter)).await;
                    delay = (delay.mul_f64(1.5)).min(Duration::from_secs(60));
                }
            }
        }
    }
}

fn bump(c: &Counters, kind: &'static str, idx: usize) {
    let mut m = c.notifications.lock();
    let e = m.entry(kind).or_default();
    match idx {
        0 => e.0 += 1,
        1 => e.1 += 1,
        2 => e.2 += 1,
        _ => e.3 += 1,
    }
}

fn redact(msg: &str, url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) if u.password().is_some() => msg.replace(url, "<redacted>"),
        _ => msg.to_string(),
    }
}

/// Alertmanager's `Retrier.Check`: 2xx is success, 5xx is retried, anything else is not.
async fn check_status(resp: reqwest::Response, url: &str) -> Result<(), (bool, String)> {
    let code = resp.status().as_u16();
    if (200..300).contains(&code) {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(1024).collect();
    let retry = code / 100 == 5;
    Err((
        retry,
        format!("unexpected status code {code}: {url}: {body}"),
    ))
}
