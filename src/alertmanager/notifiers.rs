//! Receivers' integrations: the HTTP client each builds from its `http_config`, the
//! notification data Alertmanager's templates and webhook payload carry, retries with
//! exponential backoff (500 ms doubling by 1.5 up to 60 s, jittered) until the flush's deadline,
//! and Alertmanager's rule for what is retried: transport errors and 5xx, not 4xx.

use std::time::Duration;

use super::Counters;
use super::alert::{Alert, fingerprint_text};
use super::config::{EmailSpec, HttpConfig, Integration, PagerdutySpec, SlackSpec, Spec};
use super::matcher::LabelSet;
use super::templates::Templates;

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
        m.insert(
            "receiver".into(),
            super::templates::quote_meta(self.receiver).into(),
        );
        m.insert("status".into(), status.into());
        m.insert("alerts".into(), alerts.into());
        m.insert("groupLabels".into(), serde_json::json!(self.group_labels));
        m.insert(
            "commonLabels".into(),
            serde_json::json!(super::templates::common(self.alerts, |a| &a.labels)),
        );
        m.insert(
            "commonAnnotations".into(),
            serde_json::json!(super::templates::common(self.alerts, |a| &a.annotations)),
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
    templates: std::sync::Arc<Templates>,
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
    pub fn new(
        receiver: &str,
        i: &Integration,
        external_url: &str,
        templates: std::sync::Arc<Templates>,
    ) -> Result<Notifier, String> {
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
            templates,
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
                self.post_json(url, &serde_json::Value::Object(body)).await
            }
            Spec::Slack(sc) => {
                let (url, body) = self.slack(sc, data)?;
                self.post_json(&url, &body).await
            }
            Spec::Email(ec) => {
                let m = render_email(ec, &self.templates, &self.tdata(data))?;
                send_email(ec, m).await
            }
            Spec::Pagerduty(pc) => {
                let body = self.pagerduty(pc, data)?;
                self.post_json(&pc.url, &body).await
            }
            Spec::Discord {
                webhook_url,
                title,
                message,
            } => {
                let body = self.discord(title, message, data)?;
                self.post_json(webhook_url, &body).await
            }
        }
    }

    fn discord(
        &self,
        title: &str,
        message: &str,
        data: &Data<'_>,
    ) -> Result<serde_json::Value, (bool, String)> {
        let d = self.tdata(data);
        let t = |x: &str| self.templates.text(x, &d).map_err(|e| (false, e));
        let (title, description) = (t(title)?, t(message)?);
        let color = match status_of(data) {
            "firing" => 0x992D22,
            "resolved" => 0x2ECC71,
            _ => 0x95A5A6,
        };
        Ok(serde_json::json!({
            "content": "",
            "embeds": [{"title": title, "description": description, "color": color}],
        }))
    }

    /// The template data for this notification.
    fn tdata(&self, data: &Data<'_>) -> crate::template::Value {
        super::templates::data(
            data.receiver,
            data.group_labels,
            data.alerts,
            &self.external_url,
            data.now,
        )
    }

    async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<(), (bool, String)> {
        let rb = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let rb = self.authorize(rb).map_err(|e| (false, e))?;
        let resp = rb
            .send()
            .await
            .map_err(|e| (true, redact(&e.to_string(), url)))?;
        check_status(resp, url).await
    }

    fn slack(
        &self,
        c: &SlackSpec,
        data: &Data<'_>,
    ) -> Result<(String, serde_json::Value), (bool, String)> {
        let d = self.tdata(data);
        let t = |x: &str| self.templates.text(x, &d).map_err(|e| (false, e));
        let title: String = t(&c.title)?.chars().take(1024).collect();
        let mut att = serde_json::Map::new();
        let opt = |m: &mut serde_json::Map<String, serde_json::Value>, k: &str, v: String| {
            if !v.is_empty() {
                m.insert(k.into(), v.into());
            }
        };
        opt(&mut att, "title", title);
        opt(&mut att, "title_link", t(&c.title_link)?);
        opt(&mut att, "pretext", t(&c.pretext)?);
        att.insert("text".into(), t(&c.text)?.into());
        att.insert("fallback".into(), t(&c.fallback)?.into());
        att.insert("callback_id".into(), t(&c.callback_id)?.into());
        if !c.fields.is_empty() {
            let mut fields = Vec::new();
            for f in &c.fields {
                let short = f.short.unwrap_or(c.short_fields);
                let mut m = serde_json::Map::new();
                opt(&mut m, "title", t(&f.title)?);
                opt(&mut m, "value", t(&f.value)?);
                m.insert("short".into(), short.into());
                fields.push(serde_json::Value::Object(m));
            }
            att.insert("fields".into(), fields.into());
        }
        opt(&mut att, "image_url", t(&c.image_url)?);
        opt(&mut att, "thumb_url", t(&c.thumb_url)?);
        att.insert("footer".into(), t(&c.footer)?.into());
        opt(&mut att, "color", t(&c.color)?);
        let mrkdwn: Vec<String> = if c.mrkdwn_in.is_empty() {
            vec!["fallback".into(), "pretext".into(), "text".into()]
        } else {
            c.mrkdwn_in.clone()
        };
        att.insert("mrkdwn_in".into(), mrkdwn.into());
        let mut req = serde_json::Map::new();
        opt(&mut req, "channel", t(&c.channel)?);
        opt(&mut req, "username", t(&c.username)?);
        opt(&mut req, "icon_emoji", t(&c.icon_emoji)?);
        opt(&mut req, "icon_url", t(&c.icon_url)?);
        if c.link_names {
            req.insert("link_names".into(), true.into());
        }
        req.insert(
            "attachments".into(),
            vec![serde_json::Value::Object(att)].into(),
        );
        let url = match (&c.api_url, &c.api_url_file) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|s| s.trim().to_string())
                .map_err(|e| (false, format!("cannot read {f}: {e}")))?,
            (None, None) => return Err((false, "no Slack API URL".into())),
        };
        Ok((url, serde_json::Value::Object(req)))
    }

    fn pagerduty(
        &self,
        c: &PagerdutySpec,
        data: &Data<'_>,
    ) -> Result<serde_json::Value, (bool, String)> {
        use sha2::Digest as _;
        let d = self.tdata(data);
        let t = |x: &str| self.templates.text(x, &d).map_err(|e| (false, e));
        let key = hex::encode(sha2::Sha256::digest(data.group_key.as_bytes()));
        let resolved = status_of(data) == "resolved";
        let mut details = serde_json::Map::new();
        for (k, v) in &c.details {
            details.insert(k.clone(), t(v)?.into());
        }
        let secret = |inline: &str, file: &str| -> Result<String, (bool, String)> {
            if !file.is_empty() {
                return std::fs::read_to_string(file)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| (false, format!("cannot read {file}: {e}")));
            }
            Ok(inline.to_string())
        };
        let routing_key = secret(&c.routing_key, &c.routing_key_file)?;
        let body = if !routing_key.is_empty() {
            let summary: String = t(&c.description)?.chars().take(1024).collect();
            let severity = match t(&c.severity)? {
                s if s.is_empty() => "error".to_string(),
                s => s,
            };
            let mut payload = serde_json::json!({
                "summary": summary,
                "source": t(&c.source)?,
                "severity": severity,
            });
            for (k, v) in [
                ("class", &c.class),
                ("component", &c.component),
                ("group", &c.group),
            ] {
                let x = t(v)?;
                if !x.is_empty() {
                    payload[k] = x.into();
                }
            }
            if !details.is_empty() {
                payload["custom_details"] = serde_json::Value::Object(details);
            }
            let mut msg = serde_json::json!({
                "routing_key": routing_key,
                "dedup_key": key,
                "event_action": if resolved { "resolve" } else { "trigger" },
                "payload": payload,
            });
            let client = t(&c.client)?;
            if !client.is_empty() {
                msg["client"] = client.into();
            }
            let client_url = t(&c.client_url)?;
            if !client_url.is_empty() {
                msg["client_url"] = client_url.into();
            }
            let mut images = Vec::new();
            for i in &c.images {
                images.push(
                    serde_json::json!({"src": t(&i.src)?, "alt": t(&i.alt)?, "href": t(&i.href)?}),
                );
            }
            if !images.is_empty() {
                msg["images"] = images.into();
            }
            let mut links = Vec::new();
            for l in &c.links {
                links.push(serde_json::json!({"href": t(&l.href)?, "text": t(&l.text)?}));
            }
            if !links.is_empty() {
                msg["links"] = links.into();
            }
            msg
        } else {
            // Events API v1 with a service key.
            let description: String = t(&c.description)?.chars().take(1024).collect();
            serde_json::json!({
                "service_key": secret(&c.service_key, &c.service_key_file)?,
                "incident_key": key,
                "event_type": if resolved { "resolve" } else { "trigger" },
                "description": description,
                "client": t(&c.client)?,
                "client_url": t(&c.client_url)?,
                "details": details,
            })
        };
        Ok(body)
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

fn status_of(data: &Data<'_>) -> &'static str {
    if data.alerts.iter().any(|a| !a.resolved_at(data.now)) {
        "firing"
    } else {
        "resolved"
    }
}

/// An email as Alertmanager's email notifier writes it: headers templated (`To`, `From` and
/// `Subject` defaulted), an HTML body and, when configured, a text alternative.
fn render_email(
    c: &EmailSpec,
    tmpl: &Templates,
    d: &crate::template::Value,
) -> Result<lettre::Message, (bool, String)> {
    use lettre::message::header::{HeaderName, HeaderValue};
    use lettre::message::{Mailbox, MultiPart, SinglePart};
    let t = |x: &str| tmpl.text(x, d).map_err(|e| (false, e));
    let mut headers = c.headers.clone();
    headers.entry("To".into()).or_insert_with(|| c.to.clone());
    headers
        .entry("From".into())
        .or_insert_with(|| c.from.clone());
    headers
        .entry("Subject".into())
        .or_insert_with(|| r#"{{ template "email.default.subject" . }}"#.into());
    let mut b = lettre::Message::builder();
    let from: Mailbox = t(&headers["From"])?
        .parse()
        .map_err(|e| (false, format!("parse 'from' addresses: {e}")))?;
    b = b.from(from);
    let to_text = t(&headers["To"])?;
    for addr in to_text.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let mb: Mailbox = addr
            .parse()
            .map_err(|e| (false, format!("parse 'to' addresses: {e}")))?;
        b = b.to(mb);
    }
    b = b.subject(t(&headers["Subject"])?);
    for (k, v) in &headers {
        if matches!(k.as_str(), "To" | "From" | "Subject") {
            continue;
        }
        let Ok(name) = HeaderName::new_from_ascii(k.clone()) else {
            return Err((false, format!("invalid header name {k:?}")));
        };
        b = b.raw_header(HeaderValue::new(name, t(v)?));
    }
    let html = tmpl.html(&c.html, d).map_err(|e| (false, e))?;
    let text = t(&c.text)?;
    let msg = match (text.is_empty(), html.is_empty()) {
        (false, false) => b.multipart(MultiPart::alternative_plain_html(text, html)),
        (true, false) => b.singlepart(SinglePart::html(html)),
        (false, true) => b.singlepart(SinglePart::plain(text)),
        (true, true) => b.singlepart(SinglePart::plain(String::new())),
    }
    .map_err(|e| (false, format!("build the message: {e}")))?;
    Ok(msg)
}

/// Sends over SMTP: STARTTLS when offered (required by default), implicit TLS on port 465,
/// PLAIN/LOGIN auth when a user is set.
async fn send_email(c: &EmailSpec, msg: lettre::Message) -> Result<(), (bool, String)> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let (host, port) = &c.smarthost;
    let mut params = TlsParameters::builder(host.clone());
    if c.tls.insecure_skip_verify {
        params = params.dangerous_accept_invalid_certs(true);
    }
    if let Some(ca) = c.tls.ca_file.as_deref().filter(|s| !s.is_empty()) {
        let pem = std::fs::read(ca).map_err(|e| (false, format!("cannot read {ca}: {e}")))?;
        let cert = lettre::transport::smtp::client::Certificate::from_pem(&pem)
            .map_err(|e| (false, format!("{ca}: {e}")))?;
        params = params.add_root_certificate(cert);
    }
    let params = params
        .build_rustls()
        .map_err(|e| (false, format!("TLS parameters: {e}")))?;
    let tls = if *port == 465 {
        Tls::Wrapper(params)
    } else if c.require_tls {
        Tls::Required(params)
    } else {
        Tls::Opportunistic(params)
    };
    let mut tr = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(*port)
        .tls(tls)
        .hello_name(ClientId::Domain(c.hello.clone()))
        .timeout(Some(Duration::from_secs(30)));
    if !c.auth_username.is_empty() {
        let pw = if !c.auth_password_file.is_empty() {
            std::fs::read_to_string(&c.auth_password_file)
                .map(|s| s.trim().to_string())
                .map_err(|e| (false, format!("cannot read {}: {e}", c.auth_password_file)))?
        } else {
            c.auth_password.clone()
        };
        tr = tr.credentials(Credentials::new(c.auth_username.clone(), pw));
    }
    tr.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| (!e.is_permanent(), format!("send to {host}:{port}: {e}")))
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
