//! A test-only plugin built directly against `wit/v0.1` (not the SDK, which follows the
//! current contract), as a third party's plugin from the 0.1 days would be. The host must
//! keep loading it and answer its calls through the 0.1 adapters: `/legacy/product`
//! authenticates with the caller's API key and reads a product; `/legacy/contract` calls
//! what 0.1 declared but never implemented, which must still say `unsupported`.

#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/v0.1",
        world: "dialect",
        generate_all,
    });
}

use bindings::ota::dialect::types::{HostError, Manifest, Refusal, Request, Response, Route};
use bindings::ota::dialect::{auth, blobs, catalog};

struct Legacy;

fn text(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: body.into_bytes(),
    }
}

fn case(e: HostError) -> String {
    match e {
        HostError::Unsupported(m) => format!("unsupported: {m}"),
        HostError::Unauthenticated(m) => format!("unauthenticated: {m}"),
        HostError::NotFound(m) => format!("not-found: {m}"),
        other => format!("other: {other:?}"),
    }
}

fn product(req: &Request) -> Response {
    let key = req
        .headers
        .iter()
        .find(|(n, _)| n == "x-api-key")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let sn = req.query.strip_prefix("sn=").unwrap_or_default();
    let answer = auth::verify_api_key(&key).and_then(|p| {
        let product = catalog::get_product(sn)?;
        let device = catalog::register_device(sn, "legacy-device")?;
        Ok(format!(
            "{} {} {} {}",
            p.tenant, product.name, device.sn, device.created_at
        ))
    });
    match answer {
        Ok(line) => text(200, line),
        Err(e) => text(400, case(e)),
    }
}

fn contract() -> Response {
    let lines = [
        auth::verify_hmac_sha1("app", "string", "sig", 0)
            .map(|_| "ok".to_string())
            .unwrap_or_else(case),
        auth::verify_token("t")
            .map(|_| "ok".to_string())
            .unwrap_or_else(case),
        blobs::stat("x")
            .map(|_| "ok".to_string())
            .unwrap_or_else(case),
        blobs::download_url("x", None).unwrap_or_else(case),
        catalog::get_product("P")
            .map(|_| "ok".to_string())
            .unwrap_or_else(case),
    ];
    text(200, lines.join("\n"))
}

impl bindings::Guest for Legacy {
    fn manifest() -> Manifest {
        Manifest {
            name: "legacy-v01".into(),
            version: "0.1.0".into(),
            vendor: "Test".into(),
            description: "built against ota:dialect@0.1.0".into(),
            routes: ["/legacy/product", "/legacy/contract", "/legacy/trap"]
                .into_iter()
                .map(|p| Route {
                    method: "GET".into(),
                    path: p.into(),
                })
                .collect(),
        }
    }

    fn handle(req: Request) -> Response {
        match req.path.as_str() {
            "/legacy/product" => product(&req),
            "/legacy/contract" => contract(),
            "/legacy/trap" => std::process::abort(),
            _ => text(404, "no such route".into()),
        }
    }

    fn refuse(_: Request, _: Refusal) -> Response {
        text(413, "too large".into())
    }
}

bindings::export!(Legacy with_types_in bindings);
