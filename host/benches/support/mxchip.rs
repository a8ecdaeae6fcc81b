//! The MXChip fleet the device-check benches poll: a tenant API key in the shape of a
//! Django REST framework token, and four running formal campaigns per product (three mcu
//! releases, one wifi), named as the dialect names its own.

use ota_host::Services;
use ota_host::catalog::releases::Module;

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
        let r = super::online_release(s, tenant_id, product, module, 0, version).await;
        let name = format!("mxchip:{}:online", r.id);
        super::running_campaign(s, tenant_id, p.id, &r, name, None).await;
    }
}

/// A device check as MXChip firmware sends it, with the console's token.
pub fn check(client: &reqwest::Client, url: String) -> reqwest::RequestBuilder {
    client
        .get(url)
        .header("Authorization", format!("token {TOKEN}"))
}
