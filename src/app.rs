//! Wiring: opens the stores, binds the three listeners, composes the routers (one per protocol)
//! into the main router, and runs everything until the shutdown token fires; then stops accepting,
//! lets in-flight exports finish, and drains the store so everything acknowledged is committed.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::ingest::{self, Ingest};
use crate::telemetry::{Metrics, Registry};
use crate::traces::TraceStore;
use crate::tsdb::Tsdb;

#[derive(Clone)]
struct AppState {
    store: TraceStore,
    tsdb: Tsdb,
    registry: Registry,
    base_path: String,
}

/// Reads the provisioned dashboard folders again every 10 s (Grafana's default
/// `updateIntervalSeconds`); a scan only re-reads the files when one of them changed.
fn watch_dashboards(store: crate::dashboards::DashboardStore, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let s = store.clone();
            let _ = tokio::task::spawn_blocking(move || s.rescan()).await;
        }
    });
}

/// The main listener's router: UI landing page, query APIs, OTLP/HTTP, health and own metrics,
/// all under `base_path`; the Jaeger API also at the root (Grafana drops sub-paths on search).
pub fn router(
    store: TraceStore,
    tsdb: Tsdb,
    query: crate::promql::QueryService,
    ingest: Arc<Ingest>,
    registry: Registry,
    base_path: &str,
    ui: crate::ui::UiState,
) -> Router {
    let api_state = ApiState {
        store: store.clone(),
    };
    let state = AppState {
        store,
        tsdb: tsdb.clone(),
        registry,
        base_path: base_path.to_string(),
    };
    // Rule groups and alerts; without a rule manager (tests), Prometheus's empty answers.
    let rules_api = match ui.rules.clone() {
        Some(m) => api::rules::router(m, ui.alertmanager.clone(), ui.targets.clone()),
        None => Router::new()
            .route(
                "/api/v1/rules",
                get(|| async { api::edge::prometheus_success_raw("{\"groups\":[]}") }),
            )
            .route(
                "/api/v1/alerts",
                get(|| async { api::edge::prometheus_success_raw("{\"alerts\":[]}") }),
            ),
    };
    let federate = api::federate::router(tsdb.clone(), ui.external_labels.clone())
        .merge(api::targets::router(ui.targets.clone()));
    let am_api = match ui.alertmanager.clone() {
        Some(am) => api::alertmanager::router(am),
        None => Router::new(),
    };
    let grafana_api = match ui.dashboards.clone() {
        Some(d) => api::grafana::router(d, base_path),
        None => Router::new(),
    };
    let inner = Router::new()
        .route("/", get(root_redirect))
        .route("/ui", get(root_redirect))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(own_metrics))
        .with_state(state)
        .merge(api::jaeger::router(api_state.clone()))
        .merge(api::logs::router(api_state.clone()))
        .merge(api::loki::router(api_state.store.clone()))
        .merge(api::prom::router(tsdb.clone()))
        .merge(crate::ui::router(ui))
        .merge(api::spm::router(query.clone()))
        .merge(api::gpu::router(api_state.store.clone(), tsdb.clone()))
        .merge(api::query::router(query))
        .merge(rules_api)
        .merge(am_api)
        .merge(grafana_api)
        .merge(federate)
        .merge(ingest::remote_write::router(ingest.clone()))
        .merge(ingest::loki::router(ingest.clone()))
        .merge(ingest::http::router(ingest));
    // Responses gzipped for clients that ask (the UI's pages and data, large API answers).
    let inner = inner.layer(tower_http::compression::CompressionLayer::new().gzip(true));
    if base_path.is_empty() {
        inner
    } else {
        Router::new()
            .nest(base_path, inner)
            .merge(api::jaeger::router(api_state))
    }
}

async fn root_redirect(State(s): State<AppState>) -> Redirect {
    Redirect::temporary(&format!("{}/ui/", s.base_path))
}

async fn readyz(State(s): State<AppState>) -> Response {
    if !s.store.ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "trace store is not taking writes\n",
        )
            .into_response()
    } else if !s.tsdb.ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics store is not taking writes\n",
        )
            .into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn own_metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.registry.render(),
    )
        .into_response()
}

/// A running instance: the bound addresses and the handle to stop it.
pub struct Running {
    pub http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the instance and waits until everything acknowledged is committed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("server task panicked")?
    }

    /// Waits for the instance to stop on its own (after the token fires).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({what}): is another process using it?"))
}

/// Opens the stores and binds every listener, then serves in a background task.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    // Every part's counters, composed into one `/metrics` page in this order.
    let metrics = Arc::new(Metrics::default());
    let counters = crate::ui::Counters {
        ingest: metrics.clone(),
        tsdb: Default::default(),
        samplers: Default::default(),
        forward: Default::default(),
    };
    let spanmetrics_counters = Arc::new(crate::spanmetrics::SpanMetricsCounters::default());
    let tls_reloads = Arc::new(crate::tls::Reloads::default());
    let mut registry = Registry::default();
    registry.add(metrics.clone());
    registry.add(counters.tsdb.clone());
    registry.add(counters.samplers.clone());
    registry.add(spanmetrics_counters.clone());
    let data_dir = config.data_dir.clone();
    let traces_cfg = config.traces.clone();
    let tsdb_dir = config.data_dir.join("tsdb");
    let tsdb_cfg = config.metrics.tsdb.clone();
    let tsdb_counters = counters.tsdb.clone();
    let (tsdb, tsdb_threads) =
        tokio::task::spawn_blocking(move || Tsdb::open(&tsdb_dir, tsdb_cfg, tsdb_counters))
            .await
            .context("metrics store open task panicked")?
            .with_context(|| {
                format!(
                    "cannot open the metrics store in {}",
                    config.data_dir.join("tsdb").display()
                )
            })?;
    let spanmetrics = if config.spanmetrics.enabled {
        let (sm, j) = crate::spanmetrics::SpanMetrics::start(
            config.spanmetrics.clone(),
            tsdb.clone(),
            spanmetrics_counters,
        )
        .context("cannot start the span metrics thread")?;
        Some((sm, j))
    } else {
        None
    };
    let m = metrics.clone();
    // Span metrics listen to the trace store's commits; the store does not know them.
    let sm = spanmetrics
        .as_ref()
        .map(|(s, _)| Arc::new(s.clone()) as Arc<dyn crate::traces::CommitObserver>);
    let (store, threads) =
        tokio::task::spawn_blocking(move || TraceStore::open(&data_dir, &traces_cfg, m, sm))
            .await
            .context("store open task panicked")?
            .with_context(|| {
                format!(
                    "cannot open the trace store in {}",
                    config.data_dir.display()
                )
            })?;
    let shutdown = CancellationToken::new();
    let mut ingest = Ingest::new(
        store.clone(),
        tsdb.clone(),
        &config.ingest,
        &config.metrics,
        metrics.clone(),
    );
    if config.forward.enabled() {
        registry.add(counters.forward.clone());
        ingest.forwarder = Some(
            crate::forward::Forwarder::start(
                config.forward.clone(),
                &config.data_dir,
                counters.forward.clone(),
                shutdown.clone(),
            )
            .context("cannot start forwarding")?,
        );
    }
    // The certificate is read before anything is bound, so a bad file stops the start with a
    // message naming it.
    let tls = match &config.tls {
        Some(t) => {
            let t = t.clone();
            let certs = tokio::task::spawn_blocking(move || crate::tls::CertStore::load(&t))
                .await
                .context("certificate load task panicked")??;
            Some(certs)
        }
        None => None,
    };
    if tls.is_some() {
        registry.add(tls_reloads.clone());
    }
    let tls_on = |pick: fn(&crate::tls::TlsConfig) -> bool| config.tls.as_ref().is_some_and(pick);
    let auth = config.auth.enabled.then(|| {
        Arc::new(crate::auth::Auth::new(
            config.auth.clone(),
            &config.base_path,
            tls_on(|t| t.http),
        ))
    });
    ingest.auth = auth.clone();
    let forwarder = ingest.forwarder.clone();
    let ingest = Arc::new(ingest);

    let http_l = bind(config.listen_http, "main HTTP").await?;
    let grpc_l = bind(config.listen_otlp_grpc, "OTLP gRPC").await?;
    let otlp_l = bind(config.listen_otlp_http, "OTLP HTTP").await?;
    let (http, otlp_grpc, otlp_http) = (
        http_l.local_addr()?,
        grpc_l.local_addr()?,
        otlp_l.local_addr()?,
    );
    let scheme = |on: bool| if on { "https" } else { "http" };
    tracing::info!(%http, %otlp_grpc, %otlp_http, data_dir = %config.data_dir.display(),
        http_scheme = scheme(tls_on(|t| t.http)), otlp_grpc_scheme = scheme(tls_on(|t| t.otlp_grpc)),
        otlp_http_scheme = scheme(tls_on(|t| t.otlp_http)), "sightline listening");
    if let Some(c) = &tls {
        tracing::info!(sha256 = %c.fingerprint(), "TLS certificate loaded; send SIGHUP to read it again");
    }
    if !config.auth.enabled {
        for (what, a) in [
            ("main HTTP", http),
            ("OTLP gRPC", otlp_grpc),
            ("OTLP HTTP", otlp_http),
        ] {
            if !a.ip().is_loopback() {
                tracing::warn!(listener = what, address = %a, "AUTH IS OFF on a listener that is not on loopback: anyone who can reach it can read all data and send telemetry; set [auth] enabled = true");
            }
        }
    }

    // One query path (admission, the blocking pool) for the Prometheus API, Jaeger's Monitor
    // tab and the UI.
    let query = crate::promql::QueryService::new(
        tsdb.clone(),
        crate::promql::Engine::new(config.query.clone()),
    );
    // Rules: a bad rule file stops the start here, naming the file and line. Alerts go to the
    // configured Alertmanagers through the notifier's queue.
    let external_url = external_url(&config, http);
    // The built-in Alertmanager, when configured: a bad alertmanager.yml stops the start.
    let alertmanager = match &config.notify.config_file {
        Some(path) => {
            let am_url = if config.notify.external_url.is_empty() {
                format!("{external_url}/alertmanager")
            } else {
                config.notify.external_url.clone()
            };
            let dir = config.data_dir.join("alertmanager");
            let path = path.clone();
            let am = tokio::task::spawn_blocking(move || {
                crate::alertmanager::Alertmanager::open(&dir, &path, &am_url)
            })
            .await
            .context("alertmanager start task panicked")?
            .context("cannot start the built-in alertmanager")?;
            registry.add(am.clone());
            tokio::spawn(am.clone().run(shutdown.clone()));
            Some(am)
        }
        None => None,
    };
    let local: Option<Arc<dyn crate::notify::AlertSink>> = alertmanager
        .clone()
        .map(|a| a as Arc<dyn crate::notify::AlertSink>);
    let notifier = crate::notify::Notifier::new(&config.alerting, local)?;
    registry.add(notifier.clone());
    let notifier_task = tokio::spawn(notifier.clone().run(shutdown.clone()));
    // [[logs.files]]: files read into the log store (returns at once when none are configured).
    tokio::spawn(crate::logfiles::run(
        config.logs.clone(),
        store.clone(),
        config.traces.max_size_bytes,
        shutdown.clone(),
    ));
    let rules = crate::rules::Manager::start(
        config.rules.clone(),
        &config.alerting,
        external_url,
        query.clone(),
        notifier,
        shutdown.clone(),
    )
    .map_err(|e| anyhow::anyhow!("cannot load the rules: {e}"))?;
    registry.add(rules.clone());
    // The scrape jobs of `[[scrape]]` and of `[scrape] prometheus_config`; a bad prometheus.yml
    // stops the start, as it stops Prometheus.
    let targets = crate::scrape::ScrapeManager::start(
        config
            .scrape
            .iter()
            .map(crate::scrape::config::Job::from_short)
            .collect(),
        config.scrape_prometheus_config.clone(),
        tsdb.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start scraping ([scrape] prometheus_config): {e}"))?;
    reload_rules_on_sighup(
        rules.clone(),
        alertmanager.clone(),
        targets.clone(),
        shutdown.clone(),
    )?;
    let mut ui = crate::ui::UiState::new(store.clone(), query.clone(), counters.clone(), &config);
    ui.targets = targets;
    ui.rules = Some(rules);
    ui.alertmanager = alertmanager;
    let dashboards =
        crate::dashboards::DashboardStore::open(&config.data_dir, config.dashboard_dirs.clone())
            .map_err(|e| anyhow::anyhow!("cannot open the dashboards: {e}"))?;
    watch_dashboards(dashboards.clone(), shutdown.clone());
    ui.dashboards = Some(dashboards);
    let main_router = router(
        store.clone(),
        tsdb.clone(),
        query,
        ingest.clone(),
        registry,
        &config.base_path,
        ui,
    );
    // Every request on the main listener passes the front door: request-target checks, one
    // path normalisation, then a proxied route or Sightline's own router.
    let front = crate::proxy::Front::new(
        main_router,
        &config.proxy,
        &config.base_path,
        config.trusted_proxies.clone(),
        auth,
        tls_on(|t| t.http),
    )?;
    let otlp_router = ingest::http::router(ingest.clone())
        .merge(ingest::remote_write::router(ingest.clone()))
        .merge(ingest::loki::router(ingest.clone()));
    let samplers = crate::samplers::start(
        &config,
        tsdb.clone(),
        Some(store.clone()),
        spanmetrics.as_ref().map(|(s, _)| s.processes.clone()),
        counters.samplers.clone(),
        shutdown.clone(),
    );
    // TLS listeners: HTTP/2 and HTTP/1.1 offered by ALPN on the HTTP ones, HTTP/2 on gRPC.
    use crate::tls::Bound;
    let certs_for = |on: bool| tls.as_ref().filter(|_| on);
    let http_l = Bound::new(http_l, certs_for(tls_on(|t| t.http)), &[b"h2", b"http/1.1"])?;
    let otlp_l = Bound::new(
        otlp_l,
        certs_for(tls_on(|t| t.otlp_http)),
        &[b"h2", b"http/1.1"],
    )?;
    let grpc_l = Bound::new(grpc_l, certs_for(tls_on(|t| t.otlp_grpc)), &[b"h2"])?;
    if let Some(c) = &tls {
        crate::tls::reload_on_sighup(c.clone(), tls_reloads, shutdown.clone())?;
    }
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let t1 = token.clone();
        let t2 = token.clone();
        let t3 = token.clone();
        let main_srv = tokio::spawn(async move {
            match http_l {
                Bound::Plain(l) => {
                    axum::serve(l, crate::proxy::make_service(front))
                        .with_graceful_shutdown(async move { t1.cancelled().await })
                        .await
                }
                Bound::Tls(l) => {
                    axum::serve(l, crate::proxy::make_service(front))
                        .with_graceful_shutdown(async move { t1.cancelled().await })
                        .await
                }
            }
        });
        let otlp_srv = tokio::spawn(async move {
            match otlp_l {
                Bound::Plain(l) => {
                    axum::serve(l, otlp_router)
                        .with_graceful_shutdown(async move { t2.cancelled().await })
                        .await
                }
                Bound::Tls(l) => {
                    axum::serve(l, otlp_router)
                        .with_graceful_shutdown(async move { t2.cancelled().await })
                        .await
                }
            }
        });
        let grpc_srv = tokio::spawn(async move {
            let stop = async move { t3.cancelled().await };
            match grpc_l {
                Bound::Plain(l) => {
                    let incoming = tonic::transport::server::TcpIncoming::from(l);
                    ingest::grpc::serve(ingest, incoming, stop).await
                }
                Bound::Tls(l) => ingest::grpc::serve(ingest, l.into_stream(), stop).await,
            }
        });
        token.cancelled().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let (a, b, c) = tokio::join!(main_srv, otlp_srv, grpc_srv);
        let _ = notifier_task.await;
        // No export can enqueue any more: stop the senders and the queue writer (what is queued
        // stays on disk for the next start).
        if let Some(f) = forwarder {
            f.close().await;
        }
        for (name, r) in [
            ("main http", a.map(|r| r.map_err(anyhow::Error::from))),
            ("otlp http", b.map(|r| r.map_err(anyhow::Error::from))),
            ("otlp grpc", c.map(|r| r.map_err(anyhow::Error::from))),
        ] {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(server = name, error = %e, "server stopped with an error")
                }
                Err(e) => tracing::warn!(server = name, error = %e, "server task failed"),
            }
        }
        tokio::task::spawn_blocking(move || {
            for s in samplers {
                let _ = s.join();
            }
        })
        .await?;
        // The trace store's writer feeds the span metrics, which write to the metrics store:
        // stop them in that order so the last spans are counted and written.
        store.close();
        tokio::task::spawn_blocking(move || {
            threads.join();
            if let Some((sm, j)) = spanmetrics {
                sm.stop();
                let _ = j.join();
            }
            tsdb.close();
            tsdb_threads.join();
        })
        .await?;
        tracing::info!("stores closed; bye");
        Ok(())
    });
    Ok(Running {
        http,
        otlp_grpc,
        otlp_http,
        shutdown,
        task,
    })
}

/// This instance's URL for alert links: `[alerting] external_url`, or the host name, the main
/// listener's port and the base path (Prometheus's default is the same shape).
fn external_url(config: &Config, http: SocketAddr) -> String {
    if !config.alerting.external_url.is_empty() {
        return config.alerting.external_url.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let scheme = if config.tls.as_ref().is_some_and(|t| t.http) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}:{}{}", http.port(), config.base_path)
}

/// SIGHUP reads the rule files and the Alertmanager configuration again (the TLS certificate
/// listens for it too).
fn reload_rules_on_sighup(
    rules: Arc<crate::rules::Manager>,
    alertmanager: Option<Arc<crate::alertmanager::Alertmanager>>,
    targets: crate::scrape::ScrapeManager,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = hup.recv() => if r.is_none() { return },
                }
                if let Some(am) = alertmanager.clone() {
                    let _ = tokio::task::spawn_blocking(move || am.reload()).await;
                }
                let _ = targets.reload().await;
                let _ = rules.reload().await;
            }
        });
    }
    Ok(())
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    let token = running.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        token.cancel();
    });
    running.wait().await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
