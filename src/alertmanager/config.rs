//! `alertmanager.yml` as Alertmanager 0.25 reads it: strict YAML (an unknown key is an error that
//! names it), Alertmanager's defaults, and its checks in its order, so that a file `amtool
//! check-config` takes is taken here and a file it refuses is refused. Receivers Sightline does
//! not implement (OpsGenie, WeChat, Pushover, VictorOps, SNS, Telegram, Webex) are refused with
//! an error naming them rather than accepted and never notified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::matcher::{MatchType, Matcher, anchored_regex, parse_matchers, sort_matchers};
use super::timeinterval::TimeInterval;

/// Largest configuration file accepted.
pub const MAX_CONFIG_BYTES: usize = 4 << 20;

// ---------------------------------------------------------------- raw YAML shapes

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    global: Option<RawGlobal>,
    route: Option<RawRoute>,
    #[serde(default)]
    inhibit_rules: Vec<RawInhibit>,
    #[serde(default)]
    receivers: Vec<RawReceiver>,
    #[serde(default)]
    templates: Vec<String>,
    #[serde(default)]
    mute_time_intervals: Vec<RawNamedInterval>,
    #[serde(default)]
    time_intervals: Vec<RawNamedInterval>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    resolve_timeout: Option<String>,
    http_config: Option<HttpConfig>,
    smtp_from: Option<String>,
    smtp_hello: Option<String>,
    smtp_smarthost: Option<String>,
    smtp_auth_username: Option<String>,
    smtp_auth_password: Option<String>,
    smtp_auth_password_file: Option<String>,
    smtp_auth_secret: Option<String>,
    smtp_auth_identity: Option<String>,
    smtp_require_tls: Option<bool>,
    slack_api_url: Option<String>,
    slack_api_url_file: Option<String>,
    pagerduty_url: Option<String>,
    opsgenie_api_url: Option<String>,
    opsgenie_api_key: Option<String>,
    opsgenie_api_key_file: Option<String>,
    wechat_api_url: Option<String>,
    // Read so that the key is known; WeChat receivers are refused.
    #[allow(dead_code)]
    wechat_api_secret: Option<String>,
    #[allow(dead_code)]
    wechat_api_corp_id: Option<String>,
    victorops_api_url: Option<String>,
    victorops_api_key: Option<String>,
    victorops_api_key_file: Option<String>,
    telegram_api_url: Option<String>,
    webex_api_url: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    #[serde(rename = "match")]
    match_eq: Option<BTreeMap<String, String>>,
    match_re: Option<BTreeMap<String, String>>,
    matchers: Option<Vec<String>>,
    mute_time_intervals: Option<Vec<String>>,
    active_time_intervals: Option<Vec<String>>,
    #[serde(rename = "continue", default)]
    cont: bool,
    routes: Option<Vec<RawRoute>>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInhibit {
    source_match: Option<BTreeMap<String, String>>,
    source_match_re: Option<BTreeMap<String, String>>,
    source_matchers: Option<Vec<String>>,
    target_match: Option<BTreeMap<String, String>>,
    target_match_re: Option<BTreeMap<String, String>>,
    target_matchers: Option<Vec<String>>,
    equal: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamedInterval {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_intervals: Vec<super::timeinterval::RawTimeInterval>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    #[serde(default)]
    name: String,
    #[serde(default)]
    webhook_configs: Vec<RawWebhook>,
    #[serde(default)]
    slack_configs: Vec<RawSlack>,
    #[serde(default)]
    email_configs: Vec<RawEmail>,
    #[serde(default)]
    pagerduty_configs: Vec<RawPagerduty>,
    #[serde(default)]
    discord_configs: Vec<RawDiscord>,
    opsgenie_configs: Option<serde_norway::Value>,
    wechat_configs: Option<serde_norway::Value>,
    pushover_configs: Option<serde_norway::Value>,
    victorops_configs: Option<serde_norway::Value>,
    sns_configs: Option<serde_norway::Value>,
    telegram_configs: Option<serde_norway::Value>,
    webex_configs: Option<serde_norway::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    send_resolved: Option<bool>,
    http_config: Option<HttpConfig>,
    url: Option<String>,
    #[serde(default)]
    max_alerts: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    send_resolved: Option<bool>,
    http_config: Option<HttpConfig>,
    api_url: Option<String>,
    api_url_file: Option<String>,
    channel: Option<String>,
    username: Option<String>,
    color: Option<String>,
    title: Option<String>,
    title_link: Option<String>,
    pretext: Option<String>,
    text: Option<String>,
    #[serde(default)]
    fields: Vec<SlackField>,
    #[serde(default)]
    short_fields: bool,
    footer: Option<String>,
    fallback: Option<String>,
    callback_id: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
    image_url: Option<String>,
    thumb_url: Option<String>,
    #[serde(default)]
    link_names: bool,
    #[serde(default)]
    mrkdwn_in: Vec<String>,
    actions: Option<serde_norway::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    send_resolved: Option<bool>,
    to: Option<String>,
    from: Option<String>,
    hello: Option<String>,
    smarthost: Option<String>,
    auth_username: Option<String>,
    auth_password: Option<String>,
    auth_password_file: Option<String>,
    auth_secret: Option<String>,
    auth_identity: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    html: Option<String>,
    text: Option<String>,
    require_tls: Option<bool>,
    tls_config: Option<TlsConfig>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPagerduty {
    send_resolved: Option<bool>,
    http_config: Option<HttpConfig>,
    service_key: Option<String>,
    service_key_file: Option<String>,
    routing_key: Option<String>,
    routing_key_file: Option<String>,
    url: Option<String>,
    client: Option<String>,
    client_url: Option<String>,
    description: Option<String>,
    details: Option<BTreeMap<String, String>>,
    #[serde(default)]
    images: Vec<PagerdutyImage>,
    #[serde(default)]
    links: Vec<PagerdutyLink>,
    source: Option<String>,
    severity: Option<String>,
    class: Option<String>,
    component: Option<String>,
    group: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    send_resolved: Option<bool>,
    http_config: Option<HttpConfig>,
    webhook_url: Option<String>,
    title: Option<String>,
    message: Option<String>,
}

// ---------------------------------------------------------------- shared validated pieces

/// Prometheus's `http_config` (the parts Sightline's client uses; `oauth2` is refused).
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub oauth2: Option<serde_norway::Value>,
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    pub min_version: Option<String>,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    pub short: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyImage {
    #[serde(default)]
    pub src: String,
    #[serde(default)]
    pub alt: String,
    #[serde(default)]
    pub href: String,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyLink {
    #[serde(default)]
    pub href: String,
    #[serde(default)]
    pub text: String,
}

impl HttpConfig {
    fn validate(&self) -> Result<(), String> {
        let bearer = self.bearer_token.as_deref().is_some_and(|s| !s.is_empty());
        let bearer_file = self
            .bearer_token_file
            .as_deref()
            .is_some_and(|s| !s.is_empty());
        if bearer && bearer_file {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if self.basic_auth.is_some() && (bearer || bearer_file) {
            return Err(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
                    .into(),
            );
        }
        if let Some(b) = &self.basic_auth
            && b.password.as_deref().is_some_and(|s| !s.is_empty())
            && b.password_file.as_deref().is_some_and(|s| !s.is_empty())
        {
            return Err(
                "at most one of basic_auth password & password_file must be configured".into(),
            );
        }
        if let Some(a) = &self.authorization {
            if bearer || bearer_file {
                return Err(
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            if self.basic_auth.is_some() {
                return Err(
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                );
            }
            if a.credentials.as_deref().is_some_and(|s| !s.is_empty())
                && a.credentials_file.as_deref().is_some_and(|s| !s.is_empty())
            {
                return Err("at most one of authorization credentials & credentials_file must be configured".into());
            }
            if a.kind
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("basic"))
            {
                return Err(
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#
                        .into(),
                );
            }
        }
        if self.oauth2.is_some() {
            return Err("http_config.oauth2 is not supported by Sightline".into());
        }
        if let Some(p) = &self.proxy_url
            && !p.is_empty()
        {
            reqwest::Url::parse(p).map_err(|e| format!("parse {p:?}: {e}"))?;
        }
        Ok(())
    }

    /// Relative file paths resolved against the config file's directory.
    fn resolve(&mut self, dir: &Path) {
        let fix = |p: &mut Option<String>| {
            if let Some(s) = p
                && !s.is_empty()
                && Path::new(s).is_relative()
            {
                *s = dir.join(&*s).display().to_string();
            }
        };
        fix(&mut self.bearer_token_file);
        if let Some(b) = &mut self.basic_auth {
            fix(&mut b.password_file);
        }
        if let Some(a) = &mut self.authorization {
            fix(&mut a.credentials_file);
        }
        fix(&mut self.tls_config.ca_file);
        fix(&mut self.tls_config.cert_file);
        fix(&mut self.tls_config.key_file);
    }
}

// ---------------------------------------------------------------- validated config

#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub route: Route,
    pub inhibit_rules: Vec<InhibitRule>,
    pub receivers: Vec<Receiver>,
    pub templates: Vec<String>,
    /// Both `mute_time_intervals` and `time_intervals`, by name.
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
    /// The file as read (the status API's `config.original`).
    pub original: String,
}

#[derive(Debug, Clone)]
pub struct Global {
    /// ms.
    pub resolve_timeout: i64,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub receiver: String,
    pub group_by: Vec<String>,
    pub group_by_all: bool,
    pub matchers: Vec<Matcher>,
    pub cont: bool,
    pub group_wait: i64,
    pub group_interval: i64,
    pub repeat_interval: i64,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub integrations: Vec<Integration>,
}

/// One notifier of a receiver, in Alertmanager's order (per kind, then index).
#[derive(Debug, Clone)]
pub struct Integration {
    pub kind: &'static str,
    pub index: usize,
    pub send_resolved: bool,
    pub http: HttpConfig,
    pub spec: Spec,
}

#[derive(Debug, Clone)]
pub enum Spec {
    Webhook {
        url: String,
        max_alerts: u64,
    },
    Slack(Box<SlackSpec>),
    Email(Box<EmailSpec>),
    Pagerduty(Box<PagerdutySpec>),
    Discord {
        webhook_url: String,
        title: String,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct SlackSpec {
    pub api_url: Option<String>,
    pub api_url_file: Option<String>,
    pub channel: String,
    pub username: String,
    pub color: String,
    pub title: String,
    pub title_link: String,
    pub pretext: String,
    pub text: String,
    pub fields: Vec<SlackField>,
    pub short_fields: bool,
    pub footer: String,
    pub fallback: String,
    pub callback_id: String,
    pub icon_emoji: String,
    pub icon_url: String,
    pub image_url: String,
    pub thumb_url: String,
    pub link_names: bool,
    pub mrkdwn_in: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EmailSpec {
    pub to: String,
    pub from: String,
    pub hello: String,
    pub smarthost: (String, u16),
    pub auth_username: String,
    pub auth_password: String,
    pub auth_password_file: String,
    pub auth_secret: String,
    pub auth_identity: String,
    /// Canonical header names.
    pub headers: BTreeMap<String, String>,
    pub html: String,
    pub text: String,
    pub require_tls: bool,
    pub tls: TlsConfig,
}

#[derive(Debug, Clone)]
pub struct PagerdutySpec {
    pub service_key: String,
    pub service_key_file: String,
    pub routing_key: String,
    pub routing_key_file: String,
    pub url: String,
    pub client: String,
    pub client_url: String,
    pub description: String,
    pub details: BTreeMap<String, String>,
    pub images: Vec<PagerdutyImage>,
    pub links: Vec<PagerdutyLink>,
    pub source: String,
    pub severity: String,
    pub class: String,
    pub component: String,
    pub group: String,
}

// ---------------------------------------------------------------- loading

fn model_duration(key: &str, s: &str) -> Result<i64, String> {
    crate::base::units::parse_prom_duration(s)
        .ok_or_else(|| format!("not a valid duration string: {s:?} ({key})"))
}

fn check_url(s: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("parse {s:?}: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("unsupported scheme {:?} for URL", u.scheme()));
    }
    if u.host_str().unwrap_or("").is_empty() {
        return Err("missing host for URL".into());
    }
    Ok(s.to_string())
}

fn valid_label_name(n: &str) -> bool {
    super::alert::valid_label_name(n)
}

fn eq_and_re_matchers(
    eq: &Option<BTreeMap<String, String>>,
    re: &Option<BTreeMap<String, String>>,
    list: &Option<Vec<String>>,
) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for (k, v) in eq.iter().flatten() {
        if !valid_label_name(k) {
            return Err(format!("invalid label name {k:?}"));
        }
        out.push(Matcher::new(MatchType::Equal, k, v)?);
    }
    for (k, v) in re.iter().flatten() {
        if !valid_label_name(k) {
            return Err(format!("invalid label name {k:?}"));
        }
        out.push(Matcher::new(MatchType::Regexp, k, v)?);
    }
    for line in list.iter().flatten() {
        out.extend(parse_matchers(line)?);
    }
    Ok(out)
}

/// `Host:Port` as Go's `net.SplitHostPort` takes it.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (h, p) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("address {s}: missing port in address"))?;
        (h, p)
    } else {
        let (h, p) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("address {s}: missing port in address"))?;
        if h.contains(':') {
            return Err(format!("address {s}: too many colons in address"));
        }
        (h, p)
    };
    if p.is_empty() {
        return Err(format!("address {s:?}: port cannot be empty"));
    }
    let port = p
        .parse::<u16>()
        .map_err(|_| format!("address {s}: invalid port {p:?}"))?;
    Ok((h.to_string(), port))
}

/// Go's `textproto.CanonicalMIMEHeaderKey`.
fn canonical_header(h: &str) -> String {
    let mut out = String::with_capacity(h.len());
    let mut upper = true;
    for c in h.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

/// Reads and checks a file; `Err` is the one-line reason Alertmanager would give.
pub fn load_file(path: &Path) -> Result<Config, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(format!(
            "{}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load(&text, &dir)
}

/// Parses and checks configuration text; relative paths resolve against `dir`.
pub fn load(text: &str, dir: &Path) -> Result<Config, String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "configuration larger than {MAX_CONFIG_BYTES} bytes"
        ));
    }
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_norway::from_str(text).map_err(|e| format!("yaml: {e}"))?
    };
    let mut cfg = build(raw, dir)?;
    cfg.original = text.to_string();
    Ok(cfg)
}

fn build(raw: RawConfig, dir: &Path) -> Result<Config, String> {
    // Parse-time checks of the pieces, as Alertmanager's UnmarshalYAML hooks run them.
    for mt in raw.mute_time_intervals.iter() {
        if mt.name.is_empty() {
            return Err("missing name in mute time interval".into());
        }
    }
    for ti in raw.time_intervals.iter() {
        if ti.name.is_empty() {
            return Err("missing name in time interval".into());
        }
    }
    let mut time_intervals = BTreeMap::new();
    let mut ti_defs = Vec::new();
    for named in raw
        .mute_time_intervals
        .iter()
        .chain(raw.time_intervals.iter())
    {
        let mut list = Vec::new();
        for t in &named.time_intervals {
            list.push(TimeInterval::from_raw(t)?);
        }
        ti_defs.push((named.name.clone(), list));
    }
    let g = raw.global.clone().unwrap_or_default();
    let mut global_http = g.http_config.clone().unwrap_or_default();
    global_http.validate()?;
    global_http.resolve(dir);
    let resolve_timeout = match &g.resolve_timeout {
        Some(s) => model_duration("resolve_timeout", s)?,
        None => 5 * 60_000,
    };
    let slack_api_url = g.slack_api_url.clone().filter(|s| !s.is_empty());
    let slack_api_url_file = g.slack_api_url_file.clone().filter(|s| !s.is_empty());
    if let Some(u) = &slack_api_url {
        check_url(u)?;
    }
    let pagerduty_url = match &g.pagerduty_url {
        Some(u) => check_url(u)?,
        None => "https://events.pagerduty.com/v2/enqueue".to_string(),
    };
    for u in [
        &g.opsgenie_api_url,
        &g.wechat_api_url,
        &g.victorops_api_url,
        &g.telegram_api_url,
        &g.webex_api_url,
    ]
    .into_iter()
    .flatten()
    {
        check_url(u)?;
    }
    let smarthost = match g.smtp_smarthost.as_deref() {
        Some(s) if !s.is_empty() => Some(host_port(s)?),
        _ => None,
    };
    if slack_api_url.is_some() && slack_api_url_file.is_some() {
        return Err("at most one of slack_api_url & slack_api_url_file must be configured".into());
    }
    let nonempty = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    if nonempty(&g.opsgenie_api_key) && nonempty(&g.opsgenie_api_key_file) {
        return Err(
            "at most one of opsgenie_api_key & opsgenie_api_key_file must be configured".into(),
        );
    }
    if nonempty(&g.victorops_api_key) && nonempty(&g.victorops_api_key_file) {
        return Err(
            "at most one of victorops_api_key & victorops_api_key_file must be configured".into(),
        );
    }
    if nonempty(&g.smtp_auth_password) && nonempty(&g.smtp_auth_password_file) {
        return Err(
            "at most one of smtp_auth_password & smtp_auth_password_file must be configured".into(),
        );
    }

    // Route and inhibit rules parse (their own checks) before receivers are defaulted.
    let raw_route = raw.route.clone();
    if let Some(r) = &raw_route {
        check_raw_route(r)?;
    }
    let mut inhibit_rules = Vec::new();
    for ir in &raw.inhibit_rules {
        let mut source =
            eq_and_re_matchers(&ir.source_match, &ir.source_match_re, &ir.source_matchers)?;
        let mut target =
            eq_and_re_matchers(&ir.target_match, &ir.target_match_re, &ir.target_matchers)?;
        sort_matchers(&mut source);
        sort_matchers(&mut target);
        let equal = ir.equal.clone().unwrap_or_default();
        for e in &equal {
            if !valid_label_name(e) {
                return Err(format!("{e:?} is not a valid label name"));
            }
        }
        inhibit_rules.push(InhibitRule {
            source,
            target,
            equal,
        });
    }

    let mut names = std::collections::BTreeSet::new();
    let mut receivers = Vec::new();
    for rcv in raw.receivers {
        if rcv.name.is_empty() {
            return Err("missing name in receiver".into());
        }
        if names.contains(&rcv.name) {
            return Err(format!(
                "notification config name {:?} is not unique",
                rcv.name
            ));
        }
        let mut integrations = Vec::new();
        for (i, w) in rcv.webhook_configs.iter().enumerate() {
            let url = match &w.url {
                None => return Err("missing URL in webhook config".into()),
                Some(u) => {
                    let p = reqwest::Url::parse(u).map_err(|e| format!("parse {u:?}: {e}"))?;
                    if p.scheme() != "http" && p.scheme() != "https" {
                        return Err("scheme required for webhook url".into());
                    }
                    check_url(u)?
                }
            };
            let http = http_or_global(&w.http_config, &global_http, dir)?;
            integrations.push(Integration {
                kind: "webhook",
                index: i,
                send_resolved: w.send_resolved.unwrap_or(true),
                http,
                spec: Spec::Webhook {
                    url,
                    max_alerts: w.max_alerts,
                },
            });
        }
        for (i, e) in rcv.email_configs.iter().enumerate() {
            let to = e.to.clone().unwrap_or_default();
            if to.is_empty() {
                return Err("missing to address in email config".into());
            }
            let mut headers = BTreeMap::new();
            for (h, v) in &e.headers {
                let c = canonical_header(h);
                if headers.insert(c.clone(), v.clone()).is_some() {
                    return Err(format!("duplicate header {c:?} in email config"));
                }
            }
            let host = match e.smarthost.as_deref() {
                Some(s) if !s.is_empty() => host_port(s)?,
                _ => smarthost.clone().ok_or("no global SMTP smarthost set")?,
            };
            let from = match e.from.as_deref() {
                Some(f) if !f.is_empty() => f.to_string(),
                _ => match g.smtp_from.as_deref() {
                    Some(f) if !f.is_empty() => f.to_string(),
                    _ => return Err("no global SMTP from set".into()),
                },
            };
            let or = |a: &Option<String>, b: &Option<String>| {
                a.clone()
                    .filter(|s| !s.is_empty())
                    .or_else(|| b.clone())
                    .unwrap_or_default()
            };
            let (pw, pwf) = if nonempty(&e.auth_password) || nonempty(&e.auth_password_file) {
                (
                    e.auth_password.clone().unwrap_or_default(),
                    e.auth_password_file.clone().unwrap_or_default(),
                )
            } else {
                (
                    g.smtp_auth_password.clone().unwrap_or_default(),
                    g.smtp_auth_password_file.clone().unwrap_or_default(),
                )
            };
            let mut tls = e.tls_config.clone().unwrap_or_default();
            let mut tmp = HttpConfig {
                tls_config: tls.clone(),
                ..Default::default()
            };
            tmp.resolve(dir);
            tls = tmp.tls_config;
            integrations.push(Integration {
                kind: "email",
                index: i,
                send_resolved: e.send_resolved.unwrap_or(false),
                http: HttpConfig::default(),
                spec: Spec::Email(Box::new(EmailSpec {
                    to,
                    from,
                    hello: e
                        .hello
                        .clone()
                        .filter(|s| !s.is_empty())
                        .or_else(|| g.smtp_hello.clone())
                        .unwrap_or_else(|| "localhost".into()),
                    smarthost: host,
                    auth_username: or(&e.auth_username, &g.smtp_auth_username),
                    auth_password: pw,
                    auth_password_file: pwf,
                    auth_secret: or(&e.auth_secret, &g.smtp_auth_secret),
                    auth_identity: or(&e.auth_identity, &g.smtp_auth_identity),
                    headers,
                    html: e
                        .html
                        .clone()
                        .unwrap_or_else(|| r#"{{ template "email.default.html" . }}"#.into()),
                    text: e.text.clone().unwrap_or_default(),
                    require_tls: e.require_tls.unwrap_or(g.smtp_require_tls.unwrap_or(true)),
                    tls,
                })),
            });
        }
        for (i, p) in rcv.pagerduty_configs.iter().enumerate() {
            let s = |o: &Option<String>| o.clone().unwrap_or_default();
            if s(&p.routing_key).is_empty()
                && s(&p.service_key).is_empty()
                && s(&p.routing_key_file).is_empty()
                && s(&p.service_key_file).is_empty()
            {
                return Err("missing service or routing key in PagerDuty config".into());
            }
            if !s(&p.routing_key).is_empty() && !s(&p.routing_key_file).is_empty() {
                return Err(
                    "at most one of routing_key & routing_key_file must be configured".into(),
                );
            }
            if !s(&p.service_key).is_empty() && !s(&p.service_key_file).is_empty() {
                return Err(
                    "at most one of service_key & service_key_file must be configured".into(),
                );
            }
            let client = p
                .client
                .clone()
                .unwrap_or_else(|| r#"{{ template "pagerduty.default.client" . }}"#.into());
            let mut details = p.details.clone().unwrap_or_default();
            for (k, v) in [
                (
                    "firing",
                    r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
                ),
                (
                    "resolved",
                    r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
                ),
                ("num_firing", "{{ .Alerts.Firing | len }}"),
                ("num_resolved", "{{ .Alerts.Resolved | len }}"),
            ] {
                details
                    .entry(k.to_string())
                    .or_insert_with(|| v.to_string());
            }
            let url = match &p.url {
                Some(u) => check_url(u)?,
                None => pagerduty_url.clone(),
            };
            let http = http_or_global(&p.http_config, &global_http, dir)?;
            integrations.push(Integration {
                kind: "pagerduty",
                index: i,
                send_resolved: p.send_resolved.unwrap_or(true),
                http,
                spec: Spec::Pagerduty(Box::new(PagerdutySpec {
                    service_key: s(&p.service_key),
                    service_key_file: s(&p.service_key_file),
                    routing_key: s(&p.routing_key),
                    routing_key_file: s(&p.routing_key_file),
                    url,
                    source: p
                        .source
                        .clone()
                        .filter(|x| !x.is_empty())
                        .unwrap_or_else(|| client.clone()),
                    client,
                    client_url: p.client_url.clone().unwrap_or_else(|| {
                        r#"{{ template "pagerduty.default.clientURL" . }}"#.into()
                    }),
                    description: p.description.clone().unwrap_or_else(|| {
                        r#"{{ template "pagerduty.default.description" .}}"#.into()
                    }),
                    details,
                    images: p.images.clone(),
                    links: p.links.clone(),
                    severity: s(&p.severity),
                    class: s(&p.class),
                    component: s(&p.component),
                    group: s(&p.group),
                })),
            });
        }
        for (i, sc) in rcv.slack_configs.iter().enumerate() {
            if sc.api_url.as_deref().is_some_and(|s| !s.is_empty())
                && sc.api_url_file.as_deref().is_some_and(|s| !s.is_empty())
            {
                return Err("at most one of api_url & api_url_file must be configured".into());
            }
            for f in &sc.fields {
                if f.title.is_empty() {
                    return Err("missing title in Slack field configuration".into());
                }
                if f.value.is_empty() {
                    return Err("missing value in Slack field configuration".into());
                }
            }
            if sc.actions.is_some() {
                return Err("slack_configs.actions is not supported by Sightline".into());
            }
            let (api_url, api_url_file) = match (&sc.api_url, &sc.api_url_file) {
                (Some(u), _) if !u.is_empty() => (Some(check_url(u)?), None),
                (_, Some(f)) if !f.is_empty() => (None, Some(f.clone())),
                _ => {
                    if slack_api_url.is_none() && slack_api_url_file.is_none() {
                        return Err("no global Slack API URL set either inline or in a file".into());
                    }
                    (slack_api_url.clone(), slack_api_url_file.clone())
                }
            };
            let d = |o: &Option<String>, dflt: &str| o.clone().unwrap_or_else(|| dflt.to_string());
            let http = http_or_global(&sc.http_config, &global_http, dir)?;
            integrations.push(Integration {
                kind: "slack",
                index: i,
                send_resolved: sc.send_resolved.unwrap_or(false),
                http,
                spec: Spec::Slack(Box::new(SlackSpec {
                    api_url,
                    api_url_file: api_url_file.map(|f| resolve_path(dir, &f)),
                    channel: d(&sc.channel, ""),
                    username: d(&sc.username, r#"{{ template "slack.default.username" . }}"#),
                    color: d(
                        &sc.color,
                        r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#,
                    ),
                    title: d(&sc.title, r#"{{ template "slack.default.title" . }}"#),
                    title_link: d(
                        &sc.title_link,
                        r#"{{ template "slack.default.titlelink" . }}"#,
                    ),
                    pretext: d(&sc.pretext, r#"{{ template "slack.default.pretext" . }}"#),
                    text: d(&sc.text, r#"{{ template "slack.default.text" . }}"#),
                    fields: sc.fields.clone(),
                    short_fields: sc.short_fields,
                    footer: d(&sc.footer, r#"{{ template "slack.default.footer" . }}"#),
                    fallback: d(&sc.fallback, r#"{{ template "slack.default.fallback" . }}"#),
                    callback_id: d(
                        &sc.callback_id,
                        r#"{{ template "slack.default.callbackid" . }}"#,
                    ),
                    icon_emoji: d(
                        &sc.icon_emoji,
                        r#"{{ template "slack.default.iconemoji" . }}"#,
                    ),
                    icon_url: d(&sc.icon_url, r#"{{ template "slack.default.iconurl" . }}"#),
                    image_url: d(&sc.image_url, ""),
                    thumb_url: d(&sc.thumb_url, ""),
                    link_names: sc.link_names,
                    mrkdwn_in: sc.mrkdwn_in.clone(),
                })),
            });
        }
        for (i, dc) in rcv.discord_configs.iter().enumerate() {
            let http = http_or_global(&dc.http_config, &global_http, dir)?;
            let url = match &dc.webhook_url {
                Some(u) => check_url(u)?,
                None => return Err("no discord webhook URL provided".into()),
            };
            integrations.push(Integration {
                kind: "discord",
                index: i,
                send_resolved: dc.send_resolved.unwrap_or(true),
                http,
                spec: Spec::Discord {
                    webhook_url: url,
                    title: dc
                        .title
                        .clone()
                        .unwrap_or_else(|| r#"{{ template "discord.default.title" . }}"#.into()),
                    message: dc
                        .message
                        .clone()
                        .unwrap_or_else(|| r#"{{ template "discord.default.message" . }}"#.into()),
                },
            });
        }
        for (key, v) in [
            ("opsgenie_configs", &rcv.opsgenie_configs),
            ("wechat_configs", &rcv.wechat_configs),
            ("pushover_configs", &rcv.pushover_configs),
            ("victorops_configs", &rcv.victorops_configs),
            ("sns_configs", &rcv.sns_configs),
            ("telegram_configs", &rcv.telegram_configs),
            ("webex_configs", &rcv.webex_configs),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(format!(
                    "receiver {:?}: {key} is not supported by Sightline (supported: webhook_configs, slack_configs, email_configs, pagerduty_configs, discord_configs)",
                    rcv.name
                ));
            }
        }
        names.insert(rcv.name.clone());
        receivers.push(Receiver {
            name: rcv.name,
            integrations,
        });
    }

    let Some(rr) = raw_route else {
        return Err("no routes provided".into());
    };
    if rr.receiver.as_deref().unwrap_or("").is_empty() {
        return Err("root route must specify a default receiver".into());
    }
    if rr.match_eq.as_ref().is_some_and(|m| !m.is_empty())
        || rr.match_re.as_ref().is_some_and(|m| !m.is_empty())
        || rr.matchers.as_ref().is_some_and(|m| !m.is_empty())
    {
        return Err("root route must not have any matchers".into());
    }
    if rr
        .mute_time_intervals
        .as_ref()
        .is_some_and(|m| !m.is_empty())
    {
        return Err("root route must not have any mute time intervals".into());
    }
    if rr
        .active_time_intervals
        .as_ref()
        .is_some_and(|m| !m.is_empty())
    {
        return Err("root route must not have any active time intervals".into());
    }
    check_receivers(&rr, &names)?;
    for (name, list) in ti_defs {
        if time_intervals.contains_key(&name) {
            let kind = if raw.mute_time_intervals.iter().any(|m| m.name == name)
                && !raw.time_intervals.iter().any(|m| m.name == name)
            {
                "mute time interval"
            } else {
                "time interval"
            };
            return Err(format!("{kind} {name:?} is not unique"));
        }
        time_intervals.insert(name, list);
    }
    check_time_intervals(&rr, &time_intervals)?;
    if rr.cont {
        return Err("cannot have continue in root route".into());
    }
    let route = build_route(&rr, None)?;
    Ok(Config {
        global: Global { resolve_timeout },
        route,
        inhibit_rules,
        receivers,
        templates: raw.templates.iter().map(|t| resolve_path(dir, t)).collect(),
        time_intervals,
        original: String::new(),
    })
}

fn resolve_path(dir: &Path, p: &str) -> String {
    if Path::new(p).is_relative() && !dir.as_os_str().is_empty() {
        dir.join(p).display().to_string()
    } else {
        p.to_string()
    }
}

fn http_or_global(
    own: &Option<HttpConfig>,
    global: &HttpConfig,
    dir: &Path,
) -> Result<HttpConfig, String> {
    match own {
        Some(h) => {
            h.validate()?;
            let mut h = h.clone();
            h.resolve(dir);
            Ok(h)
        }
        None => Ok(global.clone()),
    }
}

/// The checks Alertmanager's `Route.UnmarshalYAML` makes, for every route in the tree.
fn check_raw_route(r: &RawRoute) -> Result<(), String> {
    for k in r.match_eq.iter().flat_map(|m| m.keys()) {
        if !valid_label_name(k) {
            return Err(format!("invalid label name {k:?}"));
        }
    }
    for (k, v) in r.match_re.iter().flatten() {
        if !valid_label_name(k) {
            return Err(format!("invalid label name {k:?}"));
        }
        anchored_regex(v)?;
    }
    for line in r.matchers.iter().flatten() {
        parse_matchers(line)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut all = false;
    let mut named = 0;
    for l in r.group_by.iter().flatten() {
        if l == "..." {
            all = true;
        } else {
            if !valid_label_name(l) {
                return Err(format!("invalid label name {l:?} in group_by list"));
            }
            named += 1;
        }
    }
    if all && named > 0 {
        return Err(
            "cannot have wildcard group_by (`...`) and other other labels at the same time".into(),
        );
    }
    for l in r.group_by.iter().flatten().filter(|l| *l != "...") {
        if !seen.insert(l.clone()) {
            return Err(format!("duplicated label {l:?} in group_by"));
        }
    }
    for (key, v) in [
        ("group_wait", &r.group_wait),
        ("group_interval", &r.group_interval),
        ("repeat_interval", &r.repeat_interval),
    ] {
        if let Some(s) = v {
            let d = model_duration(key, s)?;
            if d == 0 && key != "group_wait" {
                return Err(format!("{key} cannot be zero"));
            }
        }
    }
    for sub in r.routes.iter().flatten() {
        check_raw_route(sub)?;
    }
    Ok(())
}

fn check_receivers(r: &RawRoute, names: &std::collections::BTreeSet<String>) -> Result<(), String> {
    for sub in r.routes.iter().flatten() {
        check_receivers(sub, names)?;
    }
    match r.receiver.as_deref() {
        Some(n) if !n.is_empty() && !names.contains(n) => {
            Err(format!("undefined receiver {n:?} used in route"))
        }
        _ => Ok(()),
    }
}

fn check_time_intervals(
    r: &RawRoute,
    known: &BTreeMap<String, Vec<TimeInterval>>,
) -> Result<(), String> {
    for sub in r.routes.iter().flatten() {
        check_time_intervals(sub, known)?;
    }
    for n in r
        .active_time_intervals
        .iter()
        .flatten()
        .chain(r.mute_time_intervals.iter().flatten())
    {
        if !known.contains_key(n) {
            return Err(format!("undefined time interval {n:?} used in route"));
        }
    }
    Ok(())
}

fn build_route(r: &RawRoute, parent: Option<&Route>) -> Result<Route, String> {
    let mut out = match parent {
        Some(p) => Route {
            routes: Vec::new(),
            matchers: Vec::new(),
            cont: false,
            ..p.clone()
        },
        None => Route {
            receiver: String::new(),
            group_by: Vec::new(),
            group_by_all: false,
            matchers: Vec::new(),
            cont: false,
            group_wait: 30_000,
            group_interval: 5 * 60_000,
            repeat_interval: 4 * 3_600_000,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        },
    };
    if let Some(n) = r.receiver.as_deref().filter(|n| !n.is_empty()) {
        out.receiver = n.to_string();
    }
    if let Some(gb) = &r.group_by {
        let all = gb.iter().any(|l| l == "...");
        if all {
            out.group_by_all = true;
            out.group_by = Vec::new();
        } else {
            out.group_by = gb.clone();
            out.group_by_all = false;
        }
    }
    if let Some(s) = &r.group_wait {
        out.group_wait = model_duration("group_wait", s)?;
    }
    if let Some(s) = &r.group_interval {
        out.group_interval = model_duration("group_interval", s)?;
    }
    if let Some(s) = &r.repeat_interval {
        out.repeat_interval = model_duration("repeat_interval", s)?;
    }
    let mut ms = eq_and_re_matchers(&r.match_eq, &r.match_re, &r.matchers)?;
    sort_matchers(&mut ms);
    out.matchers = ms;
    out.cont = r.cont;
    // Not inherited: each route names its own.
    out.mute_time_intervals = r.mute_time_intervals.clone().unwrap_or_default();
    out.active_time_intervals = r.active_time_intervals.clone().unwrap_or_default();
    let snapshot = out.clone();
    for sub in r.routes.iter().flatten() {
        out.routes.push(build_route(sub, Some(&snapshot))?);
    }
    Ok(out)
}

/// `sightline check alertmanager-config`: amtool's report per file; the number that failed.
pub fn check_files(files: &[PathBuf], out: &mut impl std::io::Write) -> usize {
    let mut failed = 0;
    for f in files {
        let _ = write!(out, "Checking '{}'", f.display());
        match load_file(f) {
            Err(e) => {
                let _ = writeln!(out, "  FAILED: {e}");
                failed += 1;
            }
            Ok(cfg) => {
                let _ = writeln!(out, "  SUCCESS");
                let _ = writeln!(out, "Found:");
                let _ = writeln!(out, " - global config");
                let _ = writeln!(out, " - route");
                let _ = writeln!(out, " - {} inhibit rules", cfg.inhibit_rules.len());
                let _ = writeln!(out, " - {} receivers", cfg.receivers.len());
                let _ = writeln!(out, " - {} templates", cfg.templates.len());
                if !cfg.templates.is_empty() {
                    match super::templates::Templates::load(&cfg.templates) {
                        Ok(_) => {
                            let _ = writeln!(out, "  SUCCESS");
                        }
                        Err(e) => {
                            let _ = writeln!(out, "  FAILED: {e}");
                            failed += 1;
                        }
                    }
                }
            }
        }
        let _ = writeln!(out);
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
global:
  resolve_timeout: 1m
route:
  receiver: default
  group_by: [alertname, cluster]
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
      group_by: ['...']
    - match: {severity: page}
      match_re: {service: "api|web"}
      receiver: pager
      mute_time_intervals: [nights]
receivers:
  - name: default
  - name: db
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:1/p", send_resolved: false, max_alerts: 3}]
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}]
        weekdays: ["monday:friday"]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
"#;

    #[test]
    fn reads_a_real_file_with_inheritance() {
        let c = load(GOOD, Path::new("")).unwrap();
        assert_eq!(c.global.resolve_timeout, 60_000);
        assert_eq!(c.route.group_by, ["alertname", "cluster"]);
        let db = &c.route.routes[0];
        assert!(db.group_by_all && db.cont && db.receiver == "db");
        assert_eq!(db.group_wait, 30_000);
        let pager = &c.route.routes[1];
        assert_eq!(pager.group_by, ["alertname", "cluster"]);
        assert_eq!(
            super::super::matcher::matchers_text(&pager.matchers),
            r#"{service=~"api|web",severity="page"}"#
        );
        assert_eq!(c.receivers.len(), 3);
        assert!(!c.receivers[2].integrations[0].send_resolved);
    }

    #[test]
    fn refuses_what_alertmanager_refuses() {
        let cases: &[(&str, &str)] = &[
            (
                "route: {receiver: x}\nreceivers: [{name: x}]\nbogus: 1\n",
                "bogus",
            ),
            ("receivers: [{name: x}]\n", "no routes provided"),
            (
                "route: {}\nreceivers: [{name: x}]\n",
                "root route must specify a default receiver",
            ),
            (
                "route: {receiver: y}\nreceivers: [{name: x}]\n",
                "undefined receiver",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x}, {name: x}]\n",
                "not unique",
            ),
            (
                "route: {receiver: x, group_by: ['...', a]}\nreceivers: [{name: x}]\n",
                "wildcard",
            ),
            (
                "route: {receiver: x, group_interval: 0s}\nreceivers: [{name: x}]\n",
                "cannot be zero",
            ),
            (
                "route: {receiver: x, routes: [{mute_time_intervals: [n]}]}\nreceivers: [{name: x}]\n",
                "undefined time interval",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, webhook_configs: [{}]}]\n",
                "missing URL",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, slack_configs: [{channel: a}]}]\n",
                "no global Slack API URL",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, email_configs: [{to: a@b}]}]\n",
                "smarthost",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, opsgenie_configs: [{api_key: k}]}]\n",
                "not supported",
            ),
            (
                "route: {receiver: x, matchers: ['a=~\"(\"']}\nreceivers: [{name: x}]\n",
                "regexp",
            ),
        ];
        for (text, want) in cases {
            let e = load(text, Path::new(""))
                .err()
                .unwrap_or_else(|| panic!("accepted {text}"));
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
