//! The `sightline` binary: flags -> config -> `app::run`, until SIGTERM or SIGINT; or
//! `sightline healthcheck`, which asks a running instance's `/healthz` (the container image's
//! HEALTHCHECK, so the image needs no curl).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sightline::config::{self, Overrides};

/// Sightline: OTLP ingest, trace and log store, Jaeger-compatible query API, in one process.
#[derive(Parser, Debug)]
#[command(name = "sightline", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (see config.example.toml); no file is needed to start.
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the stores live [default: ./sightline-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Serve the main listener under this URL prefix, e.g. /observability.
    #[arg(long, value_name = "PATH")]
    base_path: Option<String>,
    /// Main HTTP listener (UI, query APIs, OTLP/HTTP) [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// OTLP gRPC listener [default: 0.0.0.0:4317].
    #[arg(long, value_name = "ADDR")]
    otlp_grpc: Option<String>,
    /// OTLP HTTP listener [default: 0.0.0.0:4318].
    #[arg(long, value_name = "ADDR")]
    otlp_http: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Exit 0 if the instance this configuration describes answers /healthz, 1 if not.
    Healthcheck {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Read a password from standard input and print an argon2id hash for [auth] users
    /// ("name:<hash>").
    HashPassword,
    /// Check files as `promtool check` does: exit 0 if all are good, 1 if any is bad.
    Check {
        #[command(subcommand)]
        what: CheckWhat,
    },
    /// Run rule unit tests in promtool's format (`promtool test rules`): exit 0 if all pass.
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
}

#[derive(clap::Subcommand, Debug)]
enum CheckWhat {
    /// Prometheus rule files: syntax, expressions, names, labels, templates.
    Rules {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Without files: Sightline's configuration (the --config file, environment and flags), its
    /// rule files and its `[scrape] prometheus_config`. With files: `prometheus.yml` files, as
    /// `promtool check config` checks them (and the rule files they name).
    Config {
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Alertmanager configuration files, as `amtool check-config` checks them.
    AlertmanagerConfig {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Subcommand, Debug)]
enum TestWhat {
    /// Rule unit-test files (rule_files, input_series, alert_rule_test, promql_expr_test).
    Rules {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// `sightline check rules`: promtool's output and exit codes.
fn check_rules(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match sightline::rules::file::load_file(f) {
            Ok(rf) => println!("  SUCCESS: {} rules found\n", rf.rule_count()),
            Err(e) => {
                failed = true;
                eprintln!("  FAILED:\n{e}\n");
            }
        }
    }
    i32::from(failed)
}

/// `sightline check config FILE...`: promtool's output and exit codes for `prometheus.yml`.
fn check_prometheus_configs(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        println!("Checking {}", f.display());
        match sightline::scrape::check::check_file(f) {
            Ok((rule_files, warnings)) => {
                for w in warnings {
                    println!("  WARNING: {w}");
                }
                if !rule_files.is_empty() {
                    println!("  SUCCESS: {} rule files found", rule_files.len());
                }
                println!(
                    " SUCCESS: {} is valid prometheus config file syntax\n",
                    f.display()
                );
                let rule_files: Vec<PathBuf> = rule_files.into_iter().map(PathBuf::from).collect();
                if check_rules(&rule_files) != 0 {
                    failed = true;
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("  FAILED: {e}\n");
            }
        }
    }
    i32::from(failed)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Check {
            what: CheckWhat::Config { files },
        }) if !files.is_empty() => std::process::exit(check_prometheus_configs(files)),
        Some(Command::Check {
            what: CheckWhat::Rules { files },
        }) => std::process::exit(check_rules(files)),
        Some(Command::Check {
            what: CheckWhat::AlertmanagerConfig { files },
        }) => {
            let failed =
                sightline::alertmanager::config::check_files(files, &mut std::io::stdout());
            if failed > 0 {
                eprintln!("sightline: failed to validate {failed} file(s)");
            }
            std::process::exit(i32::from(failed > 0));
        }
        Some(Command::Test {
            what: TestWhat::Rules { files },
        }) => std::process::exit(sightline::rules::unittest::run_files(files)),
        _ => {}
    }
    if let Some(Command::HashPassword) = cli.command {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let pw = line.trim_end_matches(['\n', '\r']);
        if pw.is_empty() {
            eprintln!("sightline hash-password: empty password");
            std::process::exit(2);
        }
        println!("{}", sightline::auth::hash_password(pw));
        return Ok(());
    }
    let flags = Overrides {
        data_dir: cli.data_dir,
        base_path: cli.base_path,
        http: cli.http,
        otlp_grpc: cli.otlp_grpc,
        otlp_http: cli.otlp_http,
    };
    let (config, warnings) = match config::load(cli.config.as_deref(), std::env::vars(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sightline: {e}");
            std::process::exit(2);
        }
    };
    if let Some(Command::Check {
        what: CheckWhat::Config { .. },
    }) = cli.command
    {
        if let Some(p) = &config.scrape_prometheus_config
            && check_prometheus_configs(std::slice::from_ref(p)) != 0
        {
            std::process::exit(1);
        }
        match sightline::rules::load_specs(&config.rules) {
            Ok(g) => {
                let n: usize = g.iter().map(|g| g.rules.len()).sum();
                println!(
                    "  SUCCESS: configuration valid, {} rule groups, {n} rules",
                    g.len()
                );
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("  FAILED: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Some(Command::Healthcheck { timeout }) = cli.command {
        match healthcheck(&config, std::time::Duration::from_secs(timeout.max(1))) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("sightline healthcheck: {e}");
                std::process::exit(1);
            }
        }
    }
    init_logging(&config);
    for w in warnings {
        tracing::warn!("{w}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(sightline::app::run(config))
}

fn init_logging(config: &config::Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            // rustls warns about each client's oddities (an IP address sent as SNI, as wrk and
            // some SDKs do): per connection, not the operator's concern. A filter that names
            // targets itself is taken as written.
            let f = tracing_subscriber::EnvFilter::new(&config.log_level);
            match "rustls=error".parse() {
                Ok(d) if !config.log_level.contains('=') => f.add_directive(d),
                _ => f,
            }
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `GET {base_path}/healthz` on the main listener (loopback when it listens on all addresses).
fn healthcheck(config: &config::Config, timeout: std::time::Duration) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut addr = config.listen_http;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut conn = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("nothing answers on {addr}"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    write!(
        conn,
        "GET {}/healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        config.base_path
    )?;
    let mut head = [0u8; 64];
    let n = conn.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(
        status == "200",
        "{addr} answered {:?}",
        line.lines().next().unwrap_or("")
    );
    Ok(())
}
