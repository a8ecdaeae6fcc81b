//! Declarative provisioning: the tenants, products and API keys a config file declares are
//! created at start if missing (never deleted or rotated), so a deployment is reproducible
//! from its config alone. The same operations exist as `ota-host` subcommands.

use crate::Services;
use crate::auth::AuthError;
use crate::catalog::CatalogError;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

pub async fn apply(config: &Config, services: &Services) -> Result<(), ProvisionError> {
    for t in &config.tenants {
        let tenant = services.auth.ensure_tenant(&t.name).await?;
        for p in &t.products {
            services
                .catalog
                .ensure_product(tenant.id, &p.sn, p.name.as_deref().unwrap_or(&p.sn))
                .await?;
        }
        for k in &t.api_keys {
            services
                .auth
                .import_api_key(Some(&tenant.name), &k.name, &k.key)
                .await?;
        }
    }
    for k in &config.operator_keys {
        services.auth.import_api_key(None, &k.name, &k.key).await?;
    }
    Ok(())
}
