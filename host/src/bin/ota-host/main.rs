//! The `ota-host` command line: `serve` runs the server; the other subcommands let an
//! operator do everything without SQL — who and what the host knows in `accounts`
//! (tenants, products, keys, logins, devices, the master key), firmware and rollouts in
//! `rollout` — and check plugin files offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use ota_host::clock::{SharedClock, SystemClock};
use ota_host::config::{Config, Overrides};
use ota_host::{Services, server};

mod accounts;
mod rollout;
mod scaffold;

/// mimalloc rather than glibc's allocator: a plugin request builds and drops a store and an
/// instance (allocations of tens of KiB), which kept glibc consolidating free chunks (~10% of
/// the `xlink` bench's CPU went to malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ota-host",
    version,
    about = "OTA rollout server speaking many vendors' upgrade APIs through WebAssembly plugins"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Data directory: SQLite file, compiled-plugin cache, default plugins folder.
    #[arg(long, global = true, env = "OTA_HOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://FILE?mode=rwc or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "OTA_HOST_DATABASE")]
    database: Option<String>,
    /// TOML configuration file (see README, "Configuration").
    #[arg(long, global = true, env = "OTA_HOST_CONFIG")]
    config: Option<PathBuf>,
    /// Where firmware files are kept: s3://bucket/prefix (endpoint and credentials from
    /// AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; AWS_ALLOW_HTTP=true
    /// for a plain-http endpoint), file:///dir or a directory [default: <data-dir>/blobs].
    #[arg(long, global = true, env = "OTA_HOST_BLOB_STORE")]
    blob_store: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address of the main listener (port 0 picks a free port).
        #[arg(long, env = "OTA_HOST_LISTEN")]
        listen: Option<SocketAddr>,
        /// Plugins folder, watched for *.wasm changes [default: <data-dir>/plugins].
        #[arg(long, env = "OTA_HOST_PLUGINS")]
        plugins: Option<PathBuf>,
        /// A listener of its own for `/metrics` without credentials (on the main listener
        /// it needs an operator key).
        #[arg(long, env = "OTA_HOST_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(accounts::TenantCmd),
    /// Manage products.
    #[command(subcommand)]
    Product(accounts::ProductCmd),
    /// Manage API keys (tenant keys for dialects, operator keys for the admin API).
    #[command(subcommand, name = "api-key")]
    ApiKey(accounts::ApiKeyCmd),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Store firmware files.
    #[command(subcommand)]
    Blob(rollout::BlobCmd),
    /// Manage firmware releases (full packages and from-version patches).
    #[command(subcommand)]
    Release(rollout::ReleaseCmd),
    /// Create and steer campaigns (which devices get which release).
    #[command(subcommand)]
    Campaign(rollout::CampaignCmd),
    /// Manage the user accounts and client applications a dialect's login calls accept.
    #[command(subcommand)]
    Login(accounts::LoginCmd),
    /// Manage application keys for dialects whose clients sign requests (CTWing App Keys).
    #[command(subcommand, name = "app-key")]
    AppKey(accounts::AppKeyCmd),
    /// Register or update devices.
    #[command(subcommand)]
    Device(accounts::DeviceCmd),
    /// The key that signs a tenant's browser-upload forms (the OSS-compatible `/oss/` endpoint).
    #[command(subcommand, name = "upload-key")]
    UploadKey(accounts::UploadKeyCmd),
    /// The master key that seals the secrets the host must read back (app secrets, signing keys).
    #[command(subcommand)]
    Secrets(accounts::SecretsCmd),
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Validate a plugin file offline and print its manifest.
    Check { file: PathBuf },
    /// Send one request through a plugin file against a throwaway host (temp SQLite,
    /// provisioned from --seed) and print the response: status line, headers, body.
    Call {
        file: PathBuf,
        /// GET, POST, ...
        method: String,
        /// The path the plugin sees, with an optional `?query`.
        target: String,
        /// A request header, `Name: value` (repeat the flag).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// The body: text, or `@FILE` for a file's bytes.
        #[arg(long)]
        body: Option<String>,
        /// A provisioning TOML (the server's `--config` format: tenants, keys, products,
        /// `[plugins.<name>]` mounts) applied to the throwaway host first.
        #[arg(long)]
        seed: Option<PathBuf>,
    },
    /// Push a plugin file to every replica sharing the database (validated first, like
    /// `check`); the version it replaces is kept for `rollback`.
    Push {
        file: PathBuf,
        /// Serve it to this percentage of the plugin's requests only, beside the serving
        /// version, until `promote` or `rollback`.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        canary: Option<u8>,
    },
    /// Make a plugin's canary its serving version, for every request on every replica.
    Promote {
        /// The plugin's manifest name.
        name: String,
    },
    /// End a plugin's canary, or (without one) serve its previous pushed version again, on
    /// every replica.
    Rollback {
        /// The plugin's manifest name.
        name: String,
    },
    /// List the pushed versions of every plugin, newest first.
    Pushed,
    /// Start a new dialect: a standalone project (outside any workspace) with two example
    /// routes, built into a component with one command: Rust (`cargo build --release`, with a
    /// test) or Python (componentize-py from PyPI).
    New {
        /// The dialect's name (`[a-z0-9-]`): its `[plugins.<name>]` key and path prefix.
        name: String,
        /// Where to create it [default: ./<name>].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The language of the project.
        #[arg(long, value_enum, default_value = "rust")]
        lang: scaffold::Lang,
        /// The SDK crate (`plugins/sdk` of an ota-host checkout) [default: this build's].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

fn overrides(g: &Global) -> Overrides {
    Overrides {
        data_dir: g.data_dir.clone(),
        database: g.database.clone(),
        config: g.config.clone(),
        blob_store: g.blob_store.clone(),
        ..Default::default()
    }
}

/// The services on the configured database, for a one-shot subcommand.
async fn open(o: Overrides, clock: SharedClock) -> anyhow::Result<Services> {
    Ok(Services::open(&Config::resolve(o)?, clock).await?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `plugin check` and `plugin call` run a throwaway host: the master key it makes for its
    // scratch directory is no news to the author, while the plugin's own lines are.
    let scratch = if matches!(cli.command, Command::Plugin(_)) {
        ",ota_host::secrets=warn"
    } else {
        ""
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                format!("info,sqlx=warn,wasmtime=warn,cranelift=warn{scratch}").into()
            }),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: a journal, a file or a log shipper gets
        // plain text. NO_COLOR (no-color.org) turns them off there too.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let mut o = overrides(&cli.global);
    match cli.command {
        Command::Serve {
            listen,
            plugins,
            metrics_listen,
        } => {
            o.listen = listen;
            o.plugins_dir = plugins;
            o.metrics_listen = metrics_listen;
            let config = Config::resolve(o)?;
            let server = server::start(config, clock).await?;
            let token = server.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: draining in-flight requests");
                token.cancel();
            });
            server.wait().await;
            Ok(())
        }
        Command::Tenant(cmd) => accounts::tenant(&open(o, clock).await?, cmd).await,
        Command::Product(cmd) => accounts::product(&open(o, clock).await?, cmd).await,
        Command::ApiKey(cmd) => accounts::api_key(&open(o, clock).await?, cmd).await,
        Command::Blob(rollout::BlobCmd::Put { file, md5, sha256 }) => {
            let config = Config::resolve(o)?;
            let s = Services::open(&config, clock).await?;
            let info = rollout::store_file(&s, &config, &file, md5, sha256).await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        Command::Release(cmd) => {
            let config = Config::resolve(o)?;
            let s = Services::open(&config, clock).await?;
            rollout::release(&s, &config, cmd).await
        }
        Command::Campaign(cmd) => rollout::campaign(&open(o, clock).await?, cmd).await,
        Command::Login(cmd) => accounts::login(&open(o, clock).await?, cmd).await,
        Command::AppKey(cmd) => accounts::app_key(&open(o, clock).await?, cmd).await,
        Command::Secrets(cmd) => accounts::secrets(&Config::resolve(o)?, clock, cmd).await,
        Command::UploadKey(cmd) => accounts::upload_key(&open(o, clock).await?, cmd).await,
        Command::Device(cmd) => accounts::device(&open(o, clock).await?, cmd).await,
        Command::Plugin(PluginCmd::Promote { name }) => {
            let pushed = open(o, clock).await?.pushes.promote(&name).await?;
            println!("{}", serde_json::to_string_pretty(&pushed)?);
            Ok(())
        }
        Command::Plugin(PluginCmd::Push { file, canary }) => {
            let manifest = ota_host::runtime::check::check_file(&file).await?;
            let (name, version) = (
                manifest["name"].as_str().unwrap_or_default(),
                manifest["version"].as_str().unwrap_or_default(),
            );
            let s = open(o, clock).await?;
            let pushed = s
                .pushes
                .push(name, version, std::fs::read(&file)?, "cli", canary)
                .await?;
            println!("{}", serde_json::to_string_pretty(&pushed)?);
            Ok(())
        }
        Command::Plugin(PluginCmd::Rollback { name }) => {
            let pushed = open(o, clock).await?.pushes.rollback(&name).await?;
            println!("{}", serde_json::to_string_pretty(&pushed)?);
            Ok(())
        }
        Command::Plugin(PluginCmd::Pushed) => {
            let all = open(o, clock).await?.pushes.list().await?;
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(())
        }
        Command::Plugin(PluginCmd::Check { file }) => {
            let manifest = ota_host::runtime::check::check_file(&file).await?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
        Command::Plugin(PluginCmd::Call {
            file,
            method,
            target,
            headers,
            body,
            seed,
        }) => {
            let headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .ok_or_else(|| anyhow::anyhow!("a header is `Name: value`: {h:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = match body.as_deref() {
                Some(b) => match b.strip_prefix('@') {
                    Some(path) => std::fs::read(path)?,
                    None => b.as_bytes().to_vec(),
                },
                None => Vec::new(),
            };
            let request = ota_host::runtime::check::CallRequest {
                method,
                target,
                headers,
                body,
            };
            let r = ota_host::runtime::check::call_file(&file, seed.as_deref(), request).await?;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "HTTP/1.1 {}", r.status)?;
            for (name, value) in &r.headers {
                writeln!(out, "{name}: {value}")?;
            }
            writeln!(out)?;
            out.write_all(&r.body)?;
            if !r.body.ends_with(b"\n") {
                writeln!(out)?;
            }
            Ok(())
        }
        Command::Plugin(PluginCmd::New {
            name,
            dir,
            sdk,
            lang,
        }) => {
            let made = scaffold::new_plugin(&name, dir, sdk, lang)?;
            let d = made.dir.display();
            println!("created {d} (contract {})", ota_host::runtime::CONTRACT);
            println!("  cd {d}");
            for step in &made.build {
                println!("  {step}");
            }
            println!("  ota-host plugin check {}", made.component);
            println!("  cp {} <data-dir>/plugins/{name}.wasm", made.component);
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
