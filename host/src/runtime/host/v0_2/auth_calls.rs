//! `ota:dialect/auth@0.2.x`: API keys, device secrets, HMAC signatures, product keys, and
//! the OAuth2-style token grants over operator-provisioned logins.

use super::*;

impl auth::Host for RequestState {
    async fn anonymous(&mut self) -> Result<Principal, HostError> {
        let tenant = match (self.plugin.auth, &self.plugin.tenant) {
            (AuthMode::Anonymous, Some(t)) => t.clone(),
            _ => {
                return Err(HostError::Unauthenticated(
                    "credentials required (send an API key)".into(),
                ));
            }
        };
        let t = self
            .services
            .auth
            .tenant(&tenant)
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(self.establish(Acting {
            tenant_id: t.id,
            tenant: t.name,
            subject: "anonymous".into(),
            scheme: CredentialScheme::Anonymous,
            device: None,
        }))
    }

    async fn verify_api_key(&mut self, key: String) -> Result<Principal, HostError> {
        let id = self
            .services
            .auth
            .verify_api_key(&key)
            .await
            .map_err(|e| self.auth_err(e))?;
        let tenant = match (id.role, id.tenant) {
            (Role::Tenant, Some(t)) => t,
            _ => {
                return Err(HostError::Forbidden(
                    "operator keys are for the admin API; use a tenant API key".into(),
                ));
            }
        };
        Ok(self.establish(Acting {
            tenant_id: tenant.id,
            tenant: tenant.name,
            subject: id.name,
            scheme: CredentialScheme::ApiKey,
            device: None,
        }))
    }

    async fn verify_device_secret(
        &mut self,
        device_key: String,
        secret: String,
    ) -> Result<Principal, HostError> {
        let device_id = self
            .services
            .auth
            .verify_device_secret(&device_key, &secret)
            .await
            .map_err(|e| self.auth_err(e))?;
        let device = self
            .services
            .catalog
            .device(device_id)
            .await
            .map_err(|e| self.catalog_err(e))?;
        let tenant = self
            .services
            .auth
            .tenant_by_id(device.tenant_id)
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(self.establish(Acting {
            tenant_id: tenant.id,
            tenant: tenant.name,
            subject: device.sn.clone(),
            scheme: CredentialScheme::DeviceSecret,
            device: Some(device),
        }))
    }

    async fn current(&mut self) -> Option<Principal> {
        self.acting.as_ref().map(to_wit_principal)
    }

    async fn password_grant(
        &mut self,
        client: Option<auth::ClientCredentials>,
        username: String,
        password: String,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let client = client.map(client_of);
        let grant = self
            .services
            .auth
            .password_grant(
                &self.plugin.name,
                self.plugin.tokens,
                client.as_ref(),
                &username,
                &password,
                self.client,
            )
            .await;
        self.token_grant(grant).await
    }

    async fn refresh_grant(
        &mut self,
        client: Option<auth::ClientCredentials>,
        refresh_token: String,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let client = client.map(client_of);
        let grant = self
            .services
            .auth
            .refresh_grant(
                &self.plugin.name,
                self.plugin.tokens,
                client.as_ref(),
                &refresh_token,
                self.client,
            )
            .await;
        self.token_grant(grant).await
    }

    async fn verify_token(&mut self, token: String) -> Result<Principal, HostError> {
        let id = self
            .services
            .auth
            .verify_token(&self.plugin.name, &token)
            .await
            .map_err(|e| self.auth_err(e))?;
        let acting = self
            .token_acting(id.tenant, id.subject, id.device_id)
            .await?;
        Ok(self.establish(acting))
    }

    async fn revoke_token(&mut self, token: String) -> Result<(), HostError> {
        self.services
            .auth
            .revoke_token(&self.plugin.name, &token)
            .await
            .map_err(|e| self.auth_err(e))
    }

    async fn verify_hmac_sha1(
        &mut self,
        key_id: String,
        message: Vec<u8>,
        signature: Vec<u8>,
        timestamp_millis: Option<u64>,
    ) -> Result<Principal, HostError> {
        let id = self
            .services
            .auth
            .verify_hmac_sha1(
                &self.plugin.name,
                &key_id,
                &message,
                &signature,
                timestamp_millis.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                self.plugin.hmac_max_skew_secs,
            )
            .await
            .map_err(|e| self.auth_err(e))?;
        Ok(self.establish(Acting {
            tenant_id: id.tenant.id,
            tenant: id.tenant.name,
            subject: id.app_key,
            scheme: CredentialScheme::Hmac,
            device: None,
        }))
    }

    async fn device_login(
        &mut self,
        product_sn: String,
        mac: String,
        product_key: String,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let grant = self
            .device_login_grant(&product_sn, &mac, &product_key)
            .await;
        self.token_grant(grant).await
    }

    async fn verify_product_key(
        &mut self,
        product_sn: String,
        key: String,
    ) -> Result<(), HostError> {
        let tenant_id = self.acting()?.tenant_id;
        let product = self.tenant_product(tenant_id, &product_sn).await?;
        self.services
            .auth
            .verify_product_key(product.id, &key)
            .await
            .map_err(|e| self.auth_err(e))
    }

    async fn token_expired(&mut self, token: String) -> Result<bool, HostError> {
        self.services
            .auth
            .token_expired(&self.plugin.name, &token)
            .await
            .map_err(|e| self.auth_err(e))
    }

    async fn login_exists(
        &mut self,
        kind: auth::LoginKind,
        name: String,
    ) -> Result<bool, HostError> {
        let tenant_id = self.acting_tenant()?.tenant_id;
        let kind = match kind {
            auth::LoginKind::User => crate::auth::LoginKind::User,
            auth::LoginKind::Client => crate::auth::LoginKind::Client,
        };
        self.services
            .auth
            .login_exists(tenant_id, &self.plugin.name, kind, &name)
            .await
            .map_err(|e| self.auth_err(e))
    }
}

impl RequestState {
    /// Who a token acts for: its account, or the one device a device login confined it to.
    pub(super) async fn token_acting(
        &mut self,
        tenant: crate::auth::Tenant,
        subject: String,
        device_id: Option<i64>,
    ) -> Result<Acting, HostError> {
        let device = match device_id {
            Some(id) => Some(
                self.services
                    .catalog
                    .device(id)
                    .await
                    .map_err(|e| self.catalog_err(e))?,
            ),
            None => None,
        };
        self.own_device_current = device.is_some();
        Ok(Acting {
            tenant_id: tenant.id,
            tenant: tenant.name,
            subject: device.as_ref().map_or(subject, |d| d.sn.clone()),
            scheme: CredentialScheme::Token,
            device,
        })
    }

    /// The product whose key `key` is (of whichever tenant), and its device with `mac`.
    pub(super) async fn device_login_grant(
        &mut self,
        product_sn: &str,
        mac: &str,
        key: &str,
    ) -> Result<Grant, GrantError> {
        let refused = || GrantError::InvalidGrant("unknown product or wrong product key".into());
        let catalog_err = |e: crate::catalog::CatalogError| match e {
            crate::catalog::CatalogError::Storage(e) => GrantError::Other(e.into()),
            other => GrantError::Other(crate::auth::AuthError::Invalid(other.to_string())),
        };
        let products = self
            .services
            .catalog
            .products_with_sn(product_sn)
            .await
            .map_err(catalog_err)?;
        let (mut product, mut more) = (None, None);
        for p in products {
            match self.services.auth.verify_product_key(p.id, key).await {
                Ok(()) if product.is_none() => product = Some(p),
                Ok(()) => more = Some(p),
                Err(crate::auth::AuthError::Unauthenticated(_)) => {}
                Err(e) => return Err(GrantError::Other(e)),
            }
        }
        let product = product.ok_or_else(refused)?;
        if let Some(other) = more {
            return Err(GrantError::InvalidGrant(format!(
                "the key fits product {product_sn} of several tenants ({} and {}); the operator \
                 must give each its own key",
                product.tenant_id, other.tenant_id
            )));
        }
        let device = self
            .services
            .catalog
            .device_by_mac(&product, mac)
            .await
            .map_err(catalog_err)?;
        let tenant = self.services.auth.tenant_by_id(product.tenant_id).await?;
        self.services
            .auth
            .device_grant(
                &self.plugin.name,
                self.plugin.tokens,
                &tenant,
                device.id,
                product.id,
            )
            .await
    }

    /// A product's serial number by id (the catalog keeps products in memory).
    pub(super) async fn product_sn(&mut self, product_id: i64) -> Result<String, HostError> {
        Ok(self
            .services
            .catalog
            .product_by_id(product_id)
            .await
            .map_err(|e| self.catalog_err(e))?
            .sn)
    }

    /// The serial number of a campaign's product.
    pub(super) async fn campaign_product_sn(&mut self, c: &Campaign) -> Result<String, HostError> {
        self.product_sn(c.product_id).await
    }

    /// A campaign the principal may read: any of its tenant's, or, for a device principal,
    /// one of its own product's.
    pub(super) async fn campaign_readable(&mut self, id: u64) -> Result<Campaign, HostError> {
        let a = self.acting()?;
        let (tenant_id, own_product) =
            (a.tenant_id, a.device.as_ref().map(|d| d.product_sn.clone()));
        let id = id_of(id, "campaign")?;
        let c = match self.offered.get(&id) {
            Some(c) if c.tenant_id == tenant_id => c.clone(),
            _ => self
                .services
                .rollout
                .campaign(tenant_id, id)
                .await
                .map_err(|e| self.rollout_err(e))?,
        };
        if let Some(own) = own_product {
            let product = self.campaign_product_sn(&c).await?;
            if product != own {
                return Err(HostError::Forbidden(
                    "device credentials reach only their own product's campaigns".into(),
                ));
            }
        }
        Ok(c)
    }

    /// A grant's answer; a successful one also becomes the request's principal.
    pub(super) async fn token_grant(
        &mut self,
        grant: Result<Grant, GrantError>,
    ) -> Result<auth::TokenGrant, auth::GrantError> {
        let g = match grant {
            Ok(g) => g,
            Err(GrantError::InvalidClient(m)) => return Err(auth::GrantError::InvalidClient(m)),
            Err(GrantError::InvalidGrant(m)) => return Err(auth::GrantError::InvalidGrant(m)),
            Err(GrantError::Other(e)) => return Err(auth::GrantError::Other(self.auth_err(e))),
            // The request ends here: the call hook raises the abort as soon as this returns,
            // and the host answers the failure (so the plugin never sees this value).
            Err(GrantError::Throttled(s)) => {
                self.abort = Some(super::super::Abort::RateLimited {
                    retry_after_secs: s,
                });
                return Err(auth::GrantError::Other(HostError::Internal(
                    "too many attempts".into(),
                )));
            }
            Err(GrantError::Busy) => {
                self.abort = Some(super::super::Abort::Busy);
                return Err(auth::GrantError::Other(HostError::Internal(
                    "credential checks are saturated".into(),
                )));
            }
        };
        let acting = self
            .token_acting(g.tenant, g.subject, g.device_id)
            .await
            .map_err(auth::GrantError::Other)?;
        let principal = self.establish(acting);
        Ok(auth::TokenGrant {
            access_token: g.access_token,
            refresh_token: g.refresh_token,
            expires_in: g.expires_in,
            principal,
        })
    }
}
