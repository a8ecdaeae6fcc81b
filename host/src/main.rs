//! The `ota-host` command line: `serve` runs the server; the other subcommands provision
//! tenants, products and API keys without touching SQL, and check plugin files offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use ota_host::auth::LoginKind;
use ota_host::catalog::releases::{Module, NewRelease, PageReq, ReleaseFilter, ReleaseStatus};
use ota_host::clock::{SharedClock, SystemClock};
use ota_host::config::{Config, Overrides};
use ota_host::flows::{CampaignRequest, PayloadRequest, ScopeRequest};
use ota_host::rollout::campaigns::{Action, CampaignFilter, Mode};
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
    /// Manage firmware releases (full packages and from-version patches).
    #[command(subcommand)]
    Release(ReleaseCmd),
    /// Create and steer campaigns (which devices get which release).
    #[command(subcommand)]
    Campaign(CampaignCmd),
    /// Manage the user accounts and client applications a dialect's login calls accept.
    #[command(subcommand)]
    Login(LoginCmd),
    /// Manage application keys for dialects whose clients sign requests (CTWing App Keys).
    #[command(subcommand, name = "app-key")]
    AppKey(AppKeyCmd),
    /// Register or update devices.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// The key that signs a tenant's browser-upload forms (the OSS-compatible `/oss/` endpoint).
    #[command(subcommand, name = "upload-key")]
    UploadKey(UploadKeyCmd),
    /// The master key that seals the secrets the host must read back (app secrets, signing keys).
    #[command(subcommand)]
    Secrets(SecretsCmd),
}

#[derive(Subcommand)]
enum SecretsCmd {
    /// Where the master key comes from and the ids of its keys (the first one seals).
    Status,
    /// Seal every stored secret with a new master key. Stop the server(s) first; replicas need
    /// the new key before they start again. With a key file the file is rewritten; with
    /// `OTA_HOST_MASTER_KEY` the new key is printed once, for you to set.
    Rotate,
}

#[derive(Subcommand)]
enum UploadKeyCmd {
    /// Print the tenant's upload access id (the key is created on first use).
    Show {
        #[arg(long)]
        tenant: String,
    },
    /// Replace the tenant's upload key: forms signed with the old one stop working.
    Rotate {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum AppKeyCmd {
    /// Create a key for one plugin; prints its secret once.
    Create {
        #[arg(long)]
        tenant: String,
        /// The plugin (mount name) whose requests it signs, e.g. `ctwing`.
        #[arg(long)]
        realm: String,
        /// The App Key clients send [default: generated].
        #[arg(long)]
        app_key: Option<String>,
        /// The App Secret [default: generated]; prefer the environment variable.
        #[arg(long, env = "OTA_APP_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// List a tenant's application keys (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key by id.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: i64,
    },
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Register a device, or set its name, IMEI, MAC or group (`""` clears one).
    Put {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        product: String,
        /// The device's serial number (CTWing's deviceId, XLINK's MAC, ...).
        sn: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        imei: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Args)]
struct ReleaseCreate {
    #[arg(long)]
    tenant: String,
    /// Product serial number.
    #[arg(long)]
    product: String,
    /// wifi, mcu or sub.
    #[arg(long, default_value = "mcu")]
    module: String,
    /// Sub-device / MCU number.
    #[arg(long, default_value_t = 0)]
    identify: i64,
    #[arg(long)]
    version: String,
    /// Makes it a patch that applies only on top of this version.
    #[arg(long)]
    from_version: Option<String>,
    /// A local file to store and release.
    #[arg(long, conflicts_with_all = ["blob", "url"], required_unless_present_any = ["blob", "url"])]
    file: Option<PathBuf>,
    /// The SHA-256 of a file already stored (`ota-host blob put`).
    #[arg(long, conflicts_with = "url")]
    blob: Option<String>,
    /// An external download URL (needs --md5 and --size).
    #[arg(long, requires_all = ["md5", "size"])]
    url: Option<String>,
    #[arg(long)]
    md5: Option<String>,
    #[arg(long)]
    size: Option<u64>,
    /// Display / file name.
    #[arg(long)]
    name: Option<String>,
    /// test, online or invalid.
    #[arg(long, default_value = "test")]
    status: String,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long, default_value = "")]
    customize: String,
    /// Devices a test release may reach (repeat the flag).
    #[arg(long = "allow")]
    mac_range: Vec<String>,
}

#[derive(Subcommand)]
enum ReleaseCmd {
    /// Create a release from a local file (stored here), a stored blob, or an external URL.
    Create(Box<ReleaseCreate>),
    /// List a tenant's releases, newest first.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        product: Option<String>,
    },
    /// Move a release to test, online or invalid (invalid cancels its unfinished campaigns).
    SetStatus {
        #[arg(long)]
        tenant: String,
        id: i64,
        status: String,
    },
}

#[derive(Subcommand)]
enum CampaignCmd {
    /// Create a campaign for a release (a draft unless --start).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        release: i64,
        #[arg(long)]
        name: String,
        /// Only these devices (serial numbers; repeat the flag). Every device when omitted.
        #[arg(long = "device", conflicts_with = "group")]
        devices: Vec<String>,
        /// Only devices of this group.
        #[arg(long)]
        group: Option<String>,
        /// Only devices on exactly this version.
        #[arg(long)]
        from_version: Option<String>,
        /// formal (online releases only) or test.
        #[arg(long, default_value = "formal")]
        tag: String,
        /// Further attempts after a failure (0-3).
        #[arg(long, default_value_t = 0)]
        retries: u8,
        /// Seconds a notified device has to report a result.
        #[arg(long, default_value_t = 86_400)]
        timeout_secs: u64,
        /// Start offering at once instead of leaving a draft.
        #[arg(long)]
        start: bool,
    },
    /// List a tenant's campaigns, newest first.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Act on a campaign: start, pause, resume, stop, cancel, submit, approve or reject.
    Act {
        #[arg(long)]
        tenant: String,
        id: i64,
        action: String,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Subcommand)]
enum LoginCmd {
    /// Create a user (username + password) or client (id + secret) for one plugin.
    Create {
        #[arg(long)]
        tenant: String,
        /// The plugin (mount name) whose login calls accept it, e.g. `ubtech`.
        #[arg(long)]
        realm: String,
        /// `user` or `client`.
        #[arg(long, default_value = "user")]
        kind: String,
        /// Username or client id.
        name: String,
        /// Password or client secret [default: generated and printed once]. Prefer the
        /// environment variable, which other users of the machine cannot read from `ps`.
        #[arg(long, env = "OTA_LOGIN_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// List a tenant's login accounts (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Disable an account for good and revoke its tokens.
    Disable {
        #[arg(long)]
        tenant: String,
        id: i64,
    },
    /// Revoke every token an account holds (the account keeps working).
    RevokeTokens {
        #[arg(long)]
        tenant: String,
        id: i64,
    },
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
    /// Set attributes dialects read (`name=value`; `name=` removes one), e.g.
    /// `ctwing.protocol=t-link`.
    SetAttr {
        #[arg(long)]
        tenant: String,
        sn: String,
        #[arg(required = true)]
        attributes: Vec<String>,
    },
    /// Set the product's key (CTWing's MasterKey); prints it once.
    Key {
        #[arg(long)]
        tenant: String,
        sn: String,
        /// The key [default: generated]; prefer the environment variable, which `ps` does
        /// not show.
        #[arg(long, env = "OTA_PRODUCT_KEY", hide_env_values = true)]
        key: Option<String>,
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
        /// `hex40` for 40 hex characters, the token shape MXChip clients send.
        #[arg(long, default_value = "ota", value_parser = ["ota", "hex40"])]
        format: String,
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
                ProductCmd::SetAttr {
                    tenant,
                    sn,
                    attributes,
                } => {
                    let t = s.auth.tenant(&tenant).await?;
                    let mut changes = Vec::new();
                    for a in attributes {
                        let (name, value) = a
                            .split_once('=')
                            .ok_or_else(|| anyhow::anyhow!("{a:?} is not name=value"))?;
                        let value = (!value.is_empty()).then(|| value.to_string());
                        changes.push((name.to_string(), value));
                    }
                    for (name, value) in s
                        .catalog
                        .set_product_attributes(t.id, &sn, &changes)
                        .await?
                    {
                        println!("{name}={value}");
                    }
                }
                ProductCmd::Key { tenant, sn, key } => {
                    let t = s.auth.tenant(&tenant).await?;
                    let p = s.catalog.product(t.id, &sn).await?;
                    let key = s.auth.set_product_key(p.id, key.as_deref()).await?;
                    eprintln!("product {sn} key set; it is shown only now:");
                    println!("{key}");
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
                    format,
                } => {
                    let format = if format == "hex40" {
                        ota_host::auth::KeyFormat::Hex40
                    } else {
                        ota_host::auth::KeyFormat::Ota
                    };
                    let (info, secret) = s
                        .auth
                        .create_api_key_as(tenant.as_deref(), &name, format)
                        .await?;
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
            let info = store_file(&s, &config, &file, md5, sha256).await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        Command::Release(cmd) => {
            let config = Config::resolve(o)?;
            let s = Services::open(&config, clock).await?;
            release_cmd(&s, &config, cmd).await
        }
        Command::Campaign(cmd) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            campaign_cmd(&s, cmd).await
        }
        Command::Login(cmd) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            login_cmd(&s, cmd).await
        }
        Command::AppKey(cmd) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            match cmd {
                AppKeyCmd::Create {
                    tenant,
                    realm,
                    app_key,
                    secret,
                } => {
                    let (info, secret) = s
                        .auth
                        .create_hmac_key(&tenant, &realm, app_key.as_deref(), secret.as_deref())
                        .await?;
                    eprintln!(
                        "created app key (id {}) for plugin {}; key, then secret (shown only now):",
                        info.id, info.realm
                    );
                    println!("{}\n{secret}", info.app_key);
                }
                AppKeyCmd::List { tenant } => {
                    for k in s.auth.list_hmac_keys(&tenant).await? {
                        let state = if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        println!("{}\t{}\t{}\t{state}", k.id, k.realm, k.app_key);
                    }
                }
                AppKeyCmd::Revoke { tenant, id } => {
                    s.auth.revoke_hmac_key(&tenant, id).await?;
                    println!("revoked app key {id}");
                }
            }
            Ok(())
        }
        Command::Secrets(cmd) => {
            use ota_host::secrets::{KeySource, Sealer};
            let config = Config::resolve(o)?;
            let current = Sealer::load(&config.master_key_file())?;
            let describe = |s: &Sealer| match s.source() {
                KeySource::Env => format!("{} (environment)", ota_host::secrets::KEY_ENV),
                KeySource::File(f) => f.display().to_string(),
            };
            match cmd {
                SecretsCmd::Status => {
                    println!("{}	{}", describe(&current), current.key_ids().join(","));
                }
                SecretsCmd::Rotate => {
                    let next = Arc::new(current.with_new_key());
                    if let KeySource::File(f) = next.source() {
                        // Old and new side by side first: a crash midway loses nothing.
                        next.save(f, false)?;
                    }
                    let s = Services::open_with(&config, clock, next.clone()).await?;
                    s.db.close().await;
                    match next.source() {
                        KeySource::File(f) => {
                            next.save(f, true)?;
                            println!(
                                "every stored secret is sealed with key {}; {} holds only it now",
                                next.key_ids()[0],
                                f.display()
                            );
                        }
                        KeySource::Env => {
                            println!(
                                "every stored secret is sealed with a new key; set {} to it \
                                 (shown only now):",
                                ota_host::secrets::KEY_ENV
                            );
                            println!("{}", next.current_hex());
                        }
                    }
                }
            }
            Ok(())
        }
        Command::UploadKey(cmd) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            let key = match cmd {
                UploadKeyCmd::Show { tenant } => {
                    let t = s.auth.tenant(&tenant).await?;
                    s.uploads.key_for(t.id).await?
                }
                UploadKeyCmd::Rotate { tenant } => {
                    let t = s.auth.tenant(&tenant).await?;
                    s.uploads.rotate_key(t.id).await?
                }
            };
            println!("{}", key.access_id);
            Ok(())
        }
        Command::Device(DeviceCmd::Put {
            tenant,
            product,
            sn,
            name,
            imei,
            mac,
            group,
        }) => {
            let s = Services::open(&Config::resolve(o)?, clock).await?;
            let t = s.auth.tenant(&tenant).await?;
            let patch = ota_host::catalog::DevicePatch {
                name,
                imei,
                mac,
                group,
            };
            let d = s.catalog.update_device(t.id, &product, &sn, &patch).await?;
            println!("{}", serde_json::to_string_pretty(&d)?);
            Ok(())
        }
        Command::Plugin(PluginCmd::Check { file }) => {
            let manifest = ota_host::runtime::check::check_file(&file).await?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
    }
}

async fn release_cmd(s: &Services, config: &Config, cmd: ReleaseCmd) -> anyhow::Result<()> {
    match cmd {
        ReleaseCmd::Create(create) => {
            let ReleaseCreate {
                tenant,
                product,
                module,
                identify,
                version,
                from_version,
                file,
                blob,
                url,
                md5,
                size,
                name,
                status,
                description,
                customize,
                mac_range,
            } = *create;
            let t = s.auth.tenant(&tenant).await?;
            let module = Module::parse(&module)
                .ok_or_else(|| anyhow::anyhow!("--module must be wifi, mcu or sub"))?;
            let status = ReleaseStatus::parse(&status)
                .ok_or_else(|| anyhow::anyhow!("--status must be test, online or invalid"))?;
            let payload = match (file, blob, url) {
                (Some(file), _, _) => {
                    let info = store_file(s, config, &file, md5.clone(), None).await?;
                    PayloadRequest::Blob {
                        sha256: info.sha256,
                        md5,
                        size,
                    }
                }
                (None, Some(sha256), _) => PayloadRequest::Blob { sha256, md5, size },
                (None, None, Some(url)) => PayloadRequest::External {
                    url,
                    md5: md5.unwrap_or_default(),
                    size: size.unwrap_or_default(),
                },
                _ => anyhow::bail!("give one of --file, --blob or --url"),
            };
            let payload = s.payload(payload).await?;
            let r = s
                .catalog
                .create_release(
                    t.id,
                    NewRelease {
                        name: name.unwrap_or_else(|| format!("{product} {version}")),
                        product_sn: product,
                        module,
                        identify,
                        version,
                        from_version,
                        payload,
                        status,
                        description,
                        customize,
                        mac_range,
                    },
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        ReleaseCmd::List { tenant, product } => {
            let t = s.auth.tenant(&tenant).await?;
            let filter = ReleaseFilter {
                product,
                module: None,
                status: None,
            };
            let mut page = PageReq::window(0, 200);
            loop {
                let found = s.catalog.list_releases(t.id, &filter, page).await?;
                for r in &found.items {
                    println!(
                        "{}\t{}\t{}/{}\t{}{}\t{}\t{}",
                        r.id,
                        r.product_sn,
                        r.module.as_str(),
                        r.identify,
                        r.from_version
                            .as_deref()
                            .map(|f| format!("{f} -> "))
                            .unwrap_or_default(),
                        r.version,
                        r.status.as_str(),
                        r.name
                    );
                }
                let seen = page.offset.unwrap_or(0) + found.items.len() as u64;
                if found.items.is_empty() || seen >= found.total as u64 {
                    break;
                }
                page = PageReq::window(seen, 200);
            }
        }
        ReleaseCmd::SetStatus { tenant, id, status } => {
            let t = s.auth.tenant(&tenant).await?;
            let status = ReleaseStatus::parse(&status)
                .ok_or_else(|| anyhow::anyhow!("status must be test, online or invalid"))?;
            let (r, cancelled) = s.set_release_status(t.id, id, status, "operator").await?;
            println!("release {} is now {}", r.id, r.status.as_str());
            if !cancelled.is_empty() {
                println!("cancelled campaigns: {cancelled:?}");
            }
        }
    }
    Ok(())
}

async fn store_file(
    s: &Services,
    config: &Config,
    file: &std::path::Path,
    md5: Option<String>,
    sha256: Option<String>,
) -> anyhow::Result<ota_host::blobs::BlobInfo> {
    let f = tokio::fs::File::open(file).await?;
    let size = f.metadata().await?.len();
    let expect = ota_host::blobs::Expect {
        md5,
        sha256,
        size: Some(size),
    };
    let stream = tokio_util::io::ReaderStream::new(f);
    Ok(s.blobs
        .put(stream, &expect, config.blobs.max_upload_mib << 20)
        .await?)
}

async fn campaign_cmd(s: &Services, cmd: CampaignCmd) -> anyhow::Result<()> {
    match cmd {
        CampaignCmd::Create {
            tenant,
            release,
            name,
            devices,
            group,
            from_version,
            tag,
            retries,
            timeout_secs,
            start,
        } => {
            let t = s.auth.tenant(&tenant).await?;
            let scope = match (devices.is_empty(), group) {
                (false, _) => ScopeRequest::Devices(devices),
                (true, Some(g)) => ScopeRequest::Group(g),
                (true, None) => ScopeRequest::All,
            };
            let request = CampaignRequest {
                release_id: release,
                name,
                description: String::new(),
                from_version,
                scope,
                mode: Mode::Auto,
                tag,
                retries,
                timeout_secs,
                waves: None,
                window: None,
            };
            let mut c = s.create_campaign(t.id, request, "operator").await?;
            if start {
                c = s
                    .rollout
                    .act(
                        t.id,
                        c.id,
                        Action::Start,
                        "operator",
                        "started from the CLI",
                    )
                    .await?;
            }
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        CampaignCmd::List { tenant } => {
            let t = s.auth.tenant(&tenant).await?;
            let mut offset = 0;
            loop {
                let (campaigns, total) = s
                    .rollout
                    .list_campaigns(t.id, &CampaignFilter::default(), 200, offset)
                    .await?;
                for c in &campaigns {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        c.id,
                        c.status.as_str(),
                        c.target_version,
                        c.tag,
                        c.name
                    );
                }
                offset += campaigns.len() as i64;
                if campaigns.is_empty() || offset >= total {
                    break;
                }
            }
        }
        CampaignCmd::Act {
            tenant,
            id,
            action,
            note,
        } => {
            let t = s.auth.tenant(&tenant).await?;
            let action: Action = serde_json::from_value(serde_json::Value::String(action.clone()))
                .map_err(|_| anyhow::anyhow!("unknown action {action:?}"))?;
            let c = s.rollout.act(t.id, id, action, "operator", &note).await?;
            println!("campaign {} is now {}", c.id, c.status.as_str());
        }
    }
    Ok(())
}

async fn login_cmd(s: &Services, cmd: LoginCmd) -> anyhow::Result<()> {
    match cmd {
        LoginCmd::Create {
            tenant,
            realm,
            kind,
            name,
            secret,
        } => {
            let kind = match kind.as_str() {
                "user" => LoginKind::User,
                "client" => LoginKind::Client,
                _ => anyhow::bail!("--kind must be user or client"),
            };
            let (secret, generated) = match secret {
                Some(s) => (s, false),
                None => (ota_host::auth::generate_secret(), true),
            };
            let a = s
                .auth
                .create_login(&tenant, &realm, kind, &name, &secret)
                .await?;
            eprintln!(
                "created {} {:?} (id {}) for plugin {}",
                if kind == LoginKind::User {
                    "user"
                } else {
                    "client"
                },
                a.name,
                a.id,
                a.realm
            );
            if generated {
                eprintln!("its generated secret is shown only now:");
                println!("{secret}");
            }
        }
        LoginCmd::List { tenant } => {
            for a in s.auth.list_logins(&tenant).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    a.id,
                    a.realm,
                    a.kind.as_str(),
                    a.name,
                    if a.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    }
                );
            }
        }
        LoginCmd::Disable { tenant, id } => {
            s.auth.disable_login(&tenant, id).await?;
            println!("disabled login {id} and revoked its tokens");
        }
        LoginCmd::RevokeTokens { tenant, id } => {
            let n = s.auth.revoke_login_tokens(&tenant, id).await?;
            println!("revoked {n} tokens of login {id}");
        }
    }
    Ok(())
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
