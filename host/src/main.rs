//! The `ota-host` command line: `serve` runs the server; the other subcommands provision
//! tenants, products and API keys without touching SQL, and check plugin files offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use ota_host::clock::{SharedClock, SystemClock};
use ota_host::config::{Config, Overrides};
use ota_host::{Services, server};

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
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Manage products.
    #[command(subcommand)]
    Product(ProductCmd),
    /// Manage API keys (tenant keys for dialects, operator keys for the admin API).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCmd),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Store firmware files.
    #[command(subcommand)]
    Blob(BlobCmd),
}

#[derive(Subcommand)]
enum BlobCmd {
    /// Store a file (streamed; MD5/SHA-256 computed on the way) and print its facts.
    Put {
        file: PathBuf,
        /// Refuse (and keep nothing) unless the file has this MD5.
        #[arg(long)]
        md5: Option<String>,
        /// Refuse (and keep nothing) unless the file has this SHA-256.
        #[arg(long)]
        sha256: Option<String>,
    },
}

#[derive(Subcommand)]
enum TenantCmd {
    /// Create a tenant.
    Create { name: String },
    /// List tenants.
    List,
}

#[derive(Subcommand)]
enum ProductCmd {
    /// Create a product of a tenant.
    Create {
        #[arg(long)]
        tenant: String,
        /// The product serial number clients send (e.g. IoTStack's ProductSN).
        sn: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List a tenant's products.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum ApiKeyCmd {
    /// Create a key and print it once (only its hash is stored).
    Create {
        /// Tenant whose dialect requests the key authenticates.
        #[arg(
            long,
            conflicts_with = "operator",
            required_unless_present = "operator"
        )]
        tenant: Option<String>,
        /// An operator key for the admin API instead.
        #[arg(long)]
        operator: bool,
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Validate a plugin file offline and print its manifest.
    Check { file: PathBuf },
}

fn overrides(g: &Global) -> Overrides {
    Overrides {
        data_dir: g.data_dir.clone(),
        database: g.database.clone(),
        config: g.config.clone(),
        ..Default::default()
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
        Command::Serve { listen, plugins } => {
            o.listen = listen;
            o.plugins_dir = plugins;
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
        Command::Tenant(cmd) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            match cmd {
                TenantCmd::Create { name } => {
                    let t = s.auth.create_tenant(&name).await?;
                    println!("created tenant {} (id {})", t.name, t.id);
                }
                TenantCmd::List => {
                    for t in s.auth.list_tenants().await? {
                        println!("{}\t{}", t.id, t.name);
                    }
                }
            }
            Ok(())
        }
        Command::Product(cmd) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            match cmd {
                ProductCmd::Create { tenant, sn, name } => {
                    let t = s.auth.tenant(&tenant).await?;
                    let p = s
                        .catalog
                        .create_product(t.id, &sn, name.as_deref().unwrap_or(&sn))
                        .await?;
                    println!(
                        "created product {} ({}) for tenant {}",
                        p.sn, p.name, t.name
                    );
                }
                ProductCmd::List { tenant } => {
                    let t = s.auth.tenant(&tenant).await?;
                    for p in s.catalog.list_products(t.id).await? {
                        println!("{}\t{}", p.sn, p.name);
                    }
                }
            }
            Ok(())
        }
        Command::ApiKey(cmd) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            match cmd {
                ApiKeyCmd::Create {
                    tenant,
                    operator: _,
                    name,
                } => {
                    let (info, secret) = s.auth.create_api_key(tenant.as_deref(), &name).await?;
                    eprintln!(
                        "created {:?} key {} (id {}); it is shown only now:",
                        info.role, info.name, info.id
                    );
                    println!("{secret}");
                }
                ApiKeyCmd::List => {
                    for k in s.auth.list_api_keys().await? {
                        println!(
                            "{}\t{:?}\t{}\t{}\t{}",
                            k.id,
                            k.role,
                            k.tenant.as_deref().unwrap_or("-"),
                            k.name,
                            if k.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        );
                    }
                }
                ApiKeyCmd::Revoke { id } => {
                    s.auth.revoke_api_key(id).await?;
                    println!("revoked key {id}");
                }
            }
            Ok(())
        }
        Command::Blob(BlobCmd::Put { file, md5, sha256 }) => {
            let config = Config::resolve(o)?;
            let s = Services::open(&config, clock).await?;
            let f = tokio::fs::File::open(&file).await?;
            let size = f.metadata().await?.len();
            let expect = ota_host::blobs::Expect {
                md5,
                sha256,
                size: Some(size),
            };
            let stream = tokio_util::io::ReaderStream::new(f);
            let info = s
                .blobs
                .put(stream, &expect, config.blobs.max_upload_mib << 20)
                .await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        Command::Plugin(PluginCmd::Check { file }) => {
            let manifest = ota_host::runtime::check::check_file(&file).await?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
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
