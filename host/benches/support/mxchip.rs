//! The MXChip fleet the device-check benches poll: a tenant API key in the shape of a
//! Django REST framework token, and four running formal campaigns per product (three mcu
//! releases, one wifi), named as the dialect names its own.

use ota_host::Services;
use ota_host::catalog::releases::{Module, NewRelease, Payload, ReleaseStatus};
use ota_host::rollout::campaigns::{Action, Mode, NewCampaign, Scope, Target};

/// A Django REST framework token's shape.
pub const TOKEN: &str = "d79be1d657d9a8b45f6f903620e84b06cbf225e0";

/// The versions the campaigns bring (the newest mcu, and wifi): a device reporting these
/// is up to date.
pub const NEWEST: (&str, &str) = ("2.0.0", "3.0.0");

/// Four running formal campaigns for a product, named as the dialect names its own.
pub async fn provision(s: &Services, tenant_id: i64, product: &str) {
    let p = s.catalog.product(tenant_id, product).await.unwrap();
    for (module, version) in [
        (Module::Mcu, "1.5.0"),
        (Module::Mcu, "1.8.0"),
        (Module::Mcu, "2.0.0"),
        (Module::Wifi, "3.0.0"),
    ] {
        let r = s
            .catalog
            .create_release(
                tenant_id,
                NewRelease {
                    product_sn: product.into(),
                    module,
                    identify: 0,
                    name: format!("{version}.bin"),
                    version: version.into(),
                    from_version: None,
                    payload: Payload::External {
                        url: format!("https://cdn.example/{version}.bin"),
                        md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
                        size: 4096,
                    },
                    status: ReleaseStatus::Online,
                    description: String::new(),
                    customize: String::new(),
                    mac_range: vec![],
                    arch: None,
                },
            )
            .await
            .unwrap();
        let c = s
            .rollout
            .create_campaign(
                tenant_id,
                NewCampaign {
                    description: String::new(),
                    name: format!("mxchip:{}:online", r.id),
                    target: Target {
                        release_id: r.id,
                        product_id: p.id,
                        module: module.as_str().into(),
                        identify: 0,
                        version: version.into(),
                    },
                    from_version: None,
                    scope: Scope::All,
                    mode: Mode::Auto,
                    tag: "formal".into(),
                    retries: 0,
                    timeout_secs: 7 * 86_400,
                    waves: None,
                    window: None,
                },
                "bench",
            )
            .await
            .unwrap();
        s.rollout
            .act(tenant_id, c.id, Action::Start, "bench", "")
            .await
            .unwrap();
    }
}
