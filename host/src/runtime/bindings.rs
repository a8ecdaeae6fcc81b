//! Host-side bindings for every `ota:dialect` version this host serves, generated from
//! `wit/`. Every import is async because the host implementations talk to the database.
//! The newest version's request, response and manifest types are the ones the rest of the
//! host speaks; older plugins' values are converted at the call.

/// `ota:dialect@0.1.0`, frozen: plugins built against it keep loading.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "dialect",
        imports: { default: async },
        exports: { default: async },
    });
}

/// The newest contract this host serves (`wit/v0.2`'s package version): what a plugin made
/// with `ota-host plugin new` is built against.
pub const CONTRACT: &str = "0.2.8";

/// The componentize-py release Python dialects are built with: what a project of
/// `ota-host plugin new --lang python` pins, and what the suite builds its Python plugins with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// `ota:dialect@0.2.x`, the current contract. The host binds the exports every 0.2.x plugin
/// has (`manifest`, `handle`, `refuse`); `fail`, which 0.2.5 added, is looked up per plugin
/// (`runtime::plugin::Pre`), so plugins built against 0.2.0-0.2.4 keep loading.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        inline: "
            package ota:host;

            world dialect {
                import ota:dialect/log@0.2.8;
                import ota:dialect/clock@0.2.8;
                import ota:dialect/config@0.2.8;
                import ota:dialect/auth@0.2.8;
                import ota:dialect/catalog@0.2.8;
                import ota:dialect/rollout@0.2.8;
                import ota:dialect/blobs@0.2.8;

                use ota:dialect/types@0.2.8.{request, response, manifest, refusal};

                export manifest: func() -> manifest;
                export handle: func(req: request) -> response;
                export refuse: func(req: request, reason: refusal) -> response;
            }
        ",
        world: "ota:host/dialect",
        imports: { default: async },
        exports: { default: async },
    });
}

pub use v0_2::ota::dialect::types::{
    CredentialScheme, DeviceRef, Failure, FailureKind, HostError, Manifest, Principal, Refusal,
    Request, Response, Route,
};

/// Conversions from the current types to 0.1's (identical shapes, distinct Rust types).
pub mod to_v0_1 {
    use super::v0_1::ota::dialect::types as old;
    use super::v0_2::ota::dialect::types as new;

    pub fn request(r: &new::Request) -> old::Request {
        old::Request {
            method: r.method.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            headers: r.headers.clone(),
            body: r.body.clone(),
            base_url: r.base_url.clone(),
            host_url: r.host_url.clone(),
            request_id: r.request_id.clone(),
        }
    }

    pub fn refusal(r: new::Refusal) -> old::Refusal {
        match r {
            new::Refusal::BodyTooLarge => old::Refusal::BodyTooLarge,
        }
    }

    pub fn response(r: old::Response) -> new::Response {
        new::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }

    pub fn manifest(m: old::Manifest) -> new::Manifest {
        new::Manifest {
            name: m.name,
            version: m.version,
            vendor: m.vendor,
            description: m.description,
            routes: m
                .routes
                .into_iter()
                .map(|r| new::Route {
                    method: r.method,
                    path: r.path,
                })
                .collect(),
        }
    }

    pub fn scheme(s: new::CredentialScheme) -> old::CredentialScheme {
        match s {
            new::CredentialScheme::Anonymous => old::CredentialScheme::Anonymous,
            new::CredentialScheme::ApiKey => old::CredentialScheme::ApiKey,
            new::CredentialScheme::DeviceSecret => old::CredentialScheme::DeviceSecret,
            new::CredentialScheme::Hmac => old::CredentialScheme::Hmac,
            new::CredentialScheme::Token => old::CredentialScheme::Token,
        }
    }

    pub fn principal(p: new::Principal) -> old::Principal {
        old::Principal {
            tenant: p.tenant,
            subject: p.subject,
            scheme: scheme(p.scheme),
            device: p.device.map(|d| old::DeviceRef {
                product_sn: d.product_sn,
                device_sn: d.device_sn,
            }),
        }
    }

    pub fn error(e: new::HostError) -> old::HostError {
        match e {
            new::HostError::Unauthenticated(m) => old::HostError::Unauthenticated(m),
            new::HostError::Forbidden(m) => old::HostError::Forbidden(m),
            new::HostError::NotFound(m) => old::HostError::NotFound(m),
            new::HostError::Conflict(m) => old::HostError::Conflict(m),
            new::HostError::Invalid(m) => old::HostError::Invalid(m),
            new::HostError::Unsupported(m) => old::HostError::Unsupported(m),
            new::HostError::Internal(m) => old::HostError::Internal(m),
        }
    }
}

#[cfg(test)]
mod contract_tests {
    #[test]
    fn contract_is_the_wit_package_version() {
        let wit = include_str!("../../../wit/v0.2/dialect.wit");
        let package = wit
            .lines()
            .find_map(|l| l.strip_prefix("package ota:dialect@"))
            .and_then(|v| v.strip_suffix(';'));
        assert_eq!(package, Some(super::CONTRACT));
    }
}
