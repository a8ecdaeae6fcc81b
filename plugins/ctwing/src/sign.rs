//! Request signatures exactly as CTWing's official AEP SDKs compute them. The string to sign:
//!
//! ```text
//! application:<App Key>\n
//! timestamp:<ms>\n
//! <name>:<value>\n            one line per query parameter, sorted by name (byte order, so
//!                             `MasterKey` before `id`), values decoded
//! <body>\n                    only when the body is not blank
//! ```
//!
//! and the `signature` header is base64(HMAC-SHA1(App Secret, that string)). The plugin builds
//! the string; the host holds the secret, compares in constant time and refuses timestamps
//! outside its window. `MasterKey` (header, or query parameter as the SDKs also send it) is
//! then checked against the product.

use base64::Engine as _;
use ota_plugin_sdk::{Principal, Request, Response, auth};

use crate::envelope::ApiError;
use crate::params::Query;

/// `GET /echo`: the SDKs read the server clock from `x-ag-timestamp` at start-up.
pub fn echo(_req: &Request) -> Response {
    crate::envelope::stamped(Response::text(200, ""))
}

/// The string the SDKs sign for this request.
pub fn string_to_sign(
    application: &str,
    timestamp: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut params: Vec<&(String, String)> = query.iter().collect();
    // Stable: repeated names keep their order.
    params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = format!("application:{application}\ntimestamp:{timestamp}\n").into_bytes();
    for (name, value) in params {
        s.extend_from_slice(name.as_bytes());
        s.push(b':');
        s.extend_from_slice(value.as_bytes());
        s.push(b'\n');
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        s.extend_from_slice(body);
        s.push(b'\n');
    }
    s
}

/// Verify the request's signature; answers the principal.
pub fn authenticate(req: &Request, query: &Query) -> Result<Principal, ApiError> {
    let header = |name: &str| {
        req.header(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::Unauthorized(format!("missing {name} header")))
    };
    let application = header("application")?;
    let timestamp = header("timestamp")?;
    let signature = header("signature")?;
    let millis: u64 = timestamp.parse().map_err(|_| {
        ApiError::Unauthorized(format!("timestamp {timestamp:?} is not milliseconds"))
    })?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| ApiError::Unauthorized("signature is not base64".into()))?;
    let message = string_to_sign(application, timestamp, query.pairs(), req.body());
    Ok(auth::verify_hmac_sha1(
        application,
        &message,
        &signature,
        Some(millis),
    )?)
}

/// Check `MasterKey` (header or query) against the product, when the caller sent one.
pub fn master_key(req: &Request, query: &Query, product: &str) -> Result<(), ApiError> {
    let key = req
        .header("masterkey")
        .map(str::trim)
        .filter(|k| !k.is_empty() && *k != "None")
        .or_else(|| query.get("MasterKey"));
    if let Some(key) = key {
        auth::verify_product_key(product, key).map_err(|e| match e {
            ota_plugin_sdk::HostError::Unauthenticated(m) => ApiError::Forbidden(m),
            other => other.into(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_by_byte_order_body_only_when_not_blank() {
        let q = vec![
            ("id".to_string(), "3456".to_string()),
            ("MasterKey".to_string(), "mk".to_string()),
            ("productId".to_string(), "10005977".to_string()),
        ];
        let s = string_to_sign("app", "1", &q, b"  ");
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "application:app\ntimestamp:1\nMasterKey:mk\nid:3456\nproductId:10005977\n"
        );
        let s = string_to_sign("app", "1", &[], b"{\"a\":1}");
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "application:app\ntimestamp:1\n{\"a\":1}\n"
        );
    }
}
