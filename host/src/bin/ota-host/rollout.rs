//! Subcommands for firmware and rollouts: files into the blob store, releases (full
//! packages and from-version patches, stored or external), and campaigns with their actions.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ota_host::Services;
use ota_host::catalog::releases::{Module, NewRelease, PageReq, ReleaseFilter, ReleaseStatus};
use ota_host::config::Config;
use ota_host::flows::{CampaignRequest, PayloadRequest, ScopeRequest};
use ota_host::rollout::campaigns::{Action, CampaignFilter, Mode};

#[derive(Args)]
pub struct ReleaseCreate {
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
    /// Display and file name (CTWing shows it as `fileName`) [default: the --file's or
    /// --url's file name, else product and version].
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
    /// The CPU architecture the file is built for (IoTStack gateways: x86_64, arm7,
    /// ARMv8_64); one release per architecture may share a version. Without it the file is
    /// for every architecture.
    #[arg(long)]
    arch: Option<String>,
}

#[derive(Subcommand)]
pub enum ReleaseCmd {
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
pub enum CampaignCmd {
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
        /// Register the --device serial numbers the product does not know yet (devices that
        /// have not checked in) instead of refusing them.
        #[arg(long, requires = "devices")]
        register_devices: bool,
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
pub enum BlobCmd {
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

pub async fn release(s: &Services, config: &Config, cmd: ReleaseCmd) -> anyhow::Result<()> {
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
                arch,
            } = *create;
            let t = s.auth.tenant(&tenant).await?;
            let module = Module::parse(&module)
                .ok_or_else(|| anyhow::anyhow!("--module must be wifi, mcu or sub"))?;
            let status = ReleaseStatus::parse(&status)
                .ok_or_else(|| anyhow::anyhow!("--status must be test, online or invalid"))?;
            let file_hint = file
                .as_ref()
                .map(|f| f.to_string_lossy().into_owned())
                .or_else(|| url.clone());
            let name = name.unwrap_or_else(|| {
                ota_host::catalog::releases::default_name(&product, &version, file_hint.as_deref())
            });
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
                        name,
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
                        arch,
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
                        "{}\t{}\t{}/{}\t{}{}\t{}\t{}\t{}",
                        r.id,
                        r.product_sn,
                        r.module.as_str(),
                        r.identify,
                        r.from_version
                            .as_deref()
                            .map(|f| format!("{f} -> "))
                            .unwrap_or_default(),
                        r.version,
                        r.arch.as_deref().unwrap_or("any"),
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

pub async fn store_file(
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

pub async fn campaign(s: &Services, cmd: CampaignCmd) -> anyhow::Result<()> {
    match cmd {
        CampaignCmd::Create {
            tenant,
            release,
            name,
            devices,
            register_devices,
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
                register_devices,
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
