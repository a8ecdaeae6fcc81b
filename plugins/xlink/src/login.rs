//! XLINK's logins: `POST /v2/device_login` (a device with its product's authorize code),
//! `POST /v2/corp_auth` (an enterprise member with account and password) and the refresh
//! calls. Answers hold only strings and numbers (consoles `eval()` them).

use ota_plugin_sdk::{Request, Response, auth, catalog};
use serde_json::json;

use crate::errors::{XError, respond};

/// A MAC address as XLINK devices send it: 12 hex digits, any case, with or without `:`/`-`;
/// normalized to upper case without separators.
fn normalize_mac(raw: &str) -> Result<String, XError> {
    let mac: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-'))
        .collect::<String>()
        .to_ascii_uppercase();
    if mac.len() == 12 && mac.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(mac)
    } else {
        Err(XError::Param(format!(
            "mac must be 12 hex digits, not {raw:?}"
        )))
    }
}

fn grant_err(e: auth::GrantError, refused: fn(String) -> XError) -> XError {
    match e {
        auth::GrantError::InvalidClient(m) | auth::GrantError::InvalidGrant(m) => refused(m),
        auth::GrantError::Other(e) => e.into(),
    }
}

/// The host id of the device a device principal is confined to.
fn device_id_of(p: &ota_plugin_sdk::Principal) -> Result<Option<u64>, XError> {
    match &p.device {
        Some(d) => Ok(Some(catalog::get_device(&d.product_sn, &d.device_sn)?.id)),
        None => Ok(None),
    }
}

pub fn device_login(req: &Request) -> Response {
    respond((|| {
        let p = crate::params(req)?;
        let product = p.required("product_id")?;
        let mac = normalize_mac(&p.required("mac")?)?;
        let code = p.required("authorize_code")?;
        let g = auth::device_login(&product, &mac, &code).map_err(|e| {
            grant_err(e, |_| {
                XError::AuthorizeCode("unknown product or wrong authorize_code".into())
            })
        })?;
        let device_id = device_id_of(&g.principal)?.unwrap_or_default();
        Ok(Response::json(
            200,
            &json!({
                "access_token": g.access_token,
                "refresh_token": g.refresh_token,
                "expire_in": g.expires_in,
                "device_id": device_id,
            }),
        ))
    })())
}

pub fn corp_auth(req: &Request) -> Response {
    respond((|| {
        let p = crate::params(req)?;
        let account = p.required("account")?;
        let password = p.text("password")?.unwrap_or_default();
        let g = auth::password_grant(None, &account, &password)
            .map_err(|e| grant_err(e, |_| XError::BadLogin("wrong account or password".into())))?;
        Ok(Response::json(
            200,
            &json!({
                "corp_id": g.principal.tenant,
                "member_id": g.principal.subject,
                "access_token": g.access_token,
                "refresh_token": g.refresh_token,
                "expire_in": g.expires_in,
            }),
        ))
    })())
}

pub fn refresh(req: &Request) -> Response {
    respond((|| {
        let p = crate::params(req)?;
        let token = p.required("refresh_token")?;
        let g = auth::refresh_grant(None, &token).map_err(|e| grant_err(e, XError::BadRefresh))?;
        let mut answer = json!({
            "access_token": g.access_token,
            "refresh_token": g.refresh_token,
            "expire_in": g.expires_in,
        });
        if let Some(id) = device_id_of(&g.principal)? {
            answer["device_id"] = json!(id);
        }
        Ok(Response::json(200, &answer))
    })())
}

#[cfg(test)]
mod tests {
    use super::normalize_mac;

    #[test]
    fn macs_are_normalized() {
        assert_eq!(normalize_mac("aa:bb:cc:dd:ee:0f").unwrap(), "AABBCCDDEE0F");
        assert_eq!(normalize_mac(" AABBCCDDEE0F ").unwrap(), "AABBCCDDEE0F");
        assert!(normalize_mac("AABBCCDDEE0").is_err());
        assert!(normalize_mac("AABBCCDDEE0G").is_err());
    }
}
