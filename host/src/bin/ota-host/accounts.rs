//! Subcommands for who and what the host knows: tenants, products and their keys and
//! attributes, API keys, dialect logins, application keys, devices, upload keys, and the
//! master key that seals stored secrets.

use clap::Subcommand;
use ota_host::Services;
use ota_host::auth::LoginKind;
use ota_host::clock::SharedClock;
use ota_host::config::Config;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Where the master key comes from and the ids of its keys (the first one seals).
    Status,
    /// Seal every stored secret with a new master key. Stop the server(s) first; replicas need
    /// the new key before they start again. With a key file the file is rewritten; with
    /// `OTA_HOST_MASTER_KEY` the new key is printed once, for you to set.
    Rotate,
}

#[derive(Subcommand)]
pub enum UploadKeyCmd {
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
pub enum AppKeyCmd {
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
pub enum DeviceCmd {
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

#[derive(Subcommand)]
pub enum LoginCmd {
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
pub enum TenantCmd {
    /// Create a tenant.
    Create { name: String },
    /// List tenants.
    List,
}

#[derive(Subcommand)]
pub enum ProductCmd {
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
        /// Characters of `[a-z0-9]` to generate when no key is given (16-256) [default: 24,
        /// which fits firmware that keeps the key in a 32-byte C string].
        #[arg(long, conflicts_with = "key")]
        length: Option<usize>,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCmd {
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

pub async fn login(s: &Services, cmd: LoginCmd) -> anyhow::Result<()> {
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

/// `tenant …`.
pub async fn tenant(s: &Services, cmd: TenantCmd) -> anyhow::Result<()> {
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

/// `product …`.
pub async fn product(s: &Services, cmd: ProductCmd) -> anyhow::Result<()> {
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
        ProductCmd::Key {
            tenant,
            sn,
            key,
            length,
        } => {
            let t = s.auth.tenant(&tenant).await?;
            let p = s.catalog.product(t.id, &sn).await?;
            let key = s.auth.set_product_key(p.id, key.as_deref(), length).await?;
            eprintln!("product {sn} key set; it is shown only now:");
            println!("{key}");
        }
    }
    Ok(())
}

/// `api-key …`.
pub async fn api_key(s: &Services, cmd: ApiKeyCmd) -> anyhow::Result<()> {
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

/// `app-key …`.
pub async fn app_key(s: &Services, cmd: AppKeyCmd) -> anyhow::Result<()> {
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

/// `upload-key …`.
pub async fn upload_key(s: &Services, cmd: UploadKeyCmd) -> anyhow::Result<()> {
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

/// `secrets …`: the master key; rotation opens the services with the new key itself.
pub async fn secrets(config: &Config, clock: SharedClock, cmd: SecretsCmd) -> anyhow::Result<()> {
    use ota_host::secrets::{KeySource, Sealer};
    let current = Sealer::load(&config.master_key_file())?;
    let describe = |s: &Sealer| match s.source() {
        KeySource::Env => format!("{} (environment)", ota_host::secrets::KEY_ENV),
        KeySource::File(f) => f.display().to_string(),
    };
    match cmd {
        SecretsCmd::Status => {
            println!("{}\t{}", describe(&current), current.key_ids().join(","));
        }
        SecretsCmd::Rotate => {
            let next = Arc::new(current.with_new_key());
            if let KeySource::File(f) = next.source() {
                // Old and new side by side first: a crash midway loses nothing.
                next.save(f, false)?;
            }
            let s = Services::open_with(config, clock, next.clone()).await?;
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

/// `device put`.
pub async fn device(s: &Services, cmd: DeviceCmd) -> anyhow::Result<()> {
    let DeviceCmd::Put {
        tenant,
        product,
        sn,
        name,
        imei,
        mac,
        group,
    } = cmd;
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
