//! The guest SDK for `ota:dialect` plugins: what a third party depends on to write a vendor
//! dialect. It wraps wit-bindgen's generated types in a [`Request`] with header, query and
//! JSON helpers, a [`Response`] builder and a method + path [`Router`], so a plugin reads as
//! a translation of the vendor's API and not as plumbing. Implement [`Dialect`] and call
//! [`dialect!`] once.

// Generated glue lowers records into flat argument lists; that is the ABI, not a design smell.
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    //! Raw wit-bindgen output for the `dialect` world. Prefer the re-exports at the crate root.
    wit_bindgen::generate!({
        path: "../../wit/v0.2",
        world: "dialect",
        pub_export_macro: true,
        export_macro_name: "export_dialect_world",
        default_bindings_module: "ota_plugin_sdk::bindings",
        // Every WIT record, variant and enum can be (de)serialized, so a dialect may map
        // vendor JSON onto host types with serde directly where the shapes agree.
        additional_derives: [serde::Serialize, serde::Deserialize],
        generate_all,
    });
}

pub mod multipart;
pub mod params;
mod request;
mod response;
mod router;
pub mod time;

pub use bindings::ota::dialect::types::{
    CredentialScheme, DeviceRef, Failure, FailureKind, HostError, Manifest, Module, Principal,
    Refusal, Route, Window,
};
pub use bindings::ota::dialect::{auth, blobs, catalog, clock, config, log, rollout};
pub use ota_version_order as version;
pub use request::Request;
pub use response::Response;
pub use router::{Handler, IntoResponse, Router, Unrouted, UnroutedHandler};

/// A vendor dialect. The SDK turns it into the component's exports via [`dialect!`].
pub trait Dialect {
    /// Stable identifier, `[a-z0-9-]`, the key of the operator's `[plugins.<name>]` section.
    const NAME: &'static str;
    /// The plugin's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// The vendor whose API this speaks.
    const VENDOR: &'static str;
    /// One line for operators.
    const DESCRIPTION: &'static str;

    /// Every route of the dialect. Built per call; plugins are instantiated per request.
    fn router() -> Router;

    /// Render a host refusal (e.g. an oversized body) in the dialect's error shape.
    fn refuse(req: &Request, reason: Refusal) -> Response;

    /// Render a host failure in the dialect's error shape: the plugin is busy, the client is
    /// rate-limited, or `handle` trapped or ran out of time (contract 0.2.5). Runs on a fresh
    /// instance with a short deadline and no principal: build the answer from `failure` alone.
    /// The default answers the host's own `{"error": {"code", "message"}}` shape.
    fn fail(req: &Request, failure: &Failure) -> Response {
        let _ = req;
        default_failure(failure)
    }
}

/// The host's own shape for a failure: `failure.status`, `{"error": {"code", "message"}}` and
/// `Retry-After` when the failure says when to retry. Dialects add it to their own envelope
/// with [`retry_after`].
pub fn default_failure(failure: &Failure) -> Response {
    let code = match failure.kind {
        FailureKind::Busy => "unavailable",
        FailureKind::RateLimited => "too_many_requests",
        FailureKind::Timeout | FailureKind::Crashed => "plugin_failure",
    };
    retry_after(
        Response::json(
            failure.status,
            &serde_json::json!({ "error": { "code": code, "message": failure.message } }),
        ),
        failure,
    )
}

/// `response` with `Retry-After` added when the failure says when to retry.
pub fn retry_after(response: Response, failure: &Failure) -> Response {
    match failure.retry_after_secs {
        Some(s) => response.header("retry-after", s.to_string()),
        None => response,
    }
}

/// The manifest the host reads at load time, derived from a [`Dialect`].
pub fn manifest_of<D: Dialect>() -> Manifest {
    Manifest {
        name: D::NAME.to_string(),
        version: D::VERSION.to_string(),
        vendor: D::VENDOR.to_string(),
        description: D::DESCRIPTION.to_string(),
        routes: D::router().routes(),
    }
}

/// Log a panic through the host before the instance traps: the message and where it
/// happened reach the operator's log (tagged with plugin, version and request id) instead of
/// only "wasm `unreachable` instruction executed". [`dialect!`] installs it at every entry.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            log::log(log::Level::Error, &format!("panicked{location}: {message}"));
        }));
    });
}

/// Export a [`Dialect`] implementation as the component's `dialect` world.
#[macro_export]
macro_rules! dialect {
    ($ty:ty) => {
        struct __OtaDialectExport;
        impl $crate::bindings::Guest for __OtaDialectExport {
            fn manifest() -> $crate::Manifest {
                $crate::install_panic_hook();
                $crate::manifest_of::<$ty>()
            }
            fn handle(
                req: $crate::bindings::ota::dialect::types::Request,
            ) -> $crate::bindings::ota::dialect::types::Response {
                $crate::install_panic_hook();
                <$ty as $crate::Dialect>::router().dispatch(req).into_inner()
            }
            fn refuse(
                req: $crate::bindings::ota::dialect::types::Request,
                reason: $crate::Refusal,
            ) -> $crate::bindings::ota::dialect::types::Response {
                $crate::install_panic_hook();
                <$ty as $crate::Dialect>::refuse(&$crate::Request::new(req, Vec::new()), reason)
                    .into_inner()
            }
            fn fail(
                req: $crate::bindings::ota::dialect::types::Request,
                failure: $crate::Failure,
            ) -> $crate::bindings::ota::dialect::types::Response {
                $crate::install_panic_hook();
                <$ty as $crate::Dialect>::fail(&$crate::Request::new(req, Vec::new()), &failure)
                    .into_inner()
            }
        }
        $crate::bindings::export_dialect_world!(__OtaDialectExport with_types_in $crate::bindings);
    };
}

/// Log at `info` level through the host (tagged with plugin, version and request id).
pub fn info(message: impl AsRef<str>) {
    log::log(log::Level::Info, message.as_ref());
}

/// Log at `warn` level through the host.
pub fn warn(message: impl AsRef<str>) {
    log::log(log::Level::Warn, message.as_ref());
}

/// Every item of a windowed host listing (`list-releases`, `list-jobs`, ...), fetched 200 at
/// a time: `fetch` answers one window's items and the listing's total.
pub fn all_pages<T>(
    mut fetch: impl FnMut(Window) -> Result<(Vec<T>, u64), HostError>,
) -> Result<Vec<T>, HostError> {
    let mut all = Vec::new();
    loop {
        let (items, total) = fetch(Window {
            offset: all.len() as u64,
            limit: 200,
        })?;
        let n = items.len();
        all.extend(items);
        if n == 0 || all.len() as u64 >= total {
            return Ok(all);
        }
    }
}

/// Where a release is downloaded from: a host link to its stored file, or its external
/// URL; `None` for a release with neither.
pub fn release_url(r: &catalog::Release) -> Result<Option<String>, HostError> {
    match (&r.blob_id, &r.external_url) {
        (Some(blob), _) => blobs::download_url(blob, None).map(Some),
        (None, Some(url)) => Ok(Some(url.clone())),
        (None, None) => Ok(None),
    }
}

/// A device's job in a campaign, if it has one (a device has at most one per campaign).
pub fn device_job(campaign_id: u64, device_sn: &str) -> Result<Option<rollout::Job>, HostError> {
    let page = rollout::list_jobs(
        campaign_id,
        &rollout::JobFilter {
            state: None,
            device_sn: Some(device_sn.to_string()),
        },
        Window {
            offset: 0,
            limit: 1,
        },
    )?;
    Ok(page.items.into_iter().next())
}

impl rollout::JobState {
    /// Succeeded, failed, cancelled or timed out: no device report moves it any more.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            rollout::JobState::Queued
                | rollout::JobState::Notified
                | rollout::JobState::Downloading
                | rollout::JobState::Installing
        )
    }
}

impl HostError {
    /// The human-readable message carried by every case.
    pub fn message(&self) -> &str {
        match self {
            HostError::Unauthenticated(m)
            | HostError::Forbidden(m)
            | HostError::NotFound(m)
            | HostError::Conflict(m)
            | HostError::Invalid(m)
            | HostError::Unsupported(m)
            | HostError::Internal(m) => m,
        }
    }
}

/// The contract this SDK generates its bindings from, e.g. `0.2.8`: a plugin built with it
/// imports `ota:dialect/…@CONTRACT` and needs a host of that contract or a later 0.2.x.
pub const CONTRACT: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod version_tests {
    /// The SDK's version is the contract's: `ota-plugin-sdk 0.2.8` ⇔ `ota:dialect@0.2.8`.
    #[test]
    fn the_sdk_version_is_the_contract_version() {
        let wit = include_str!("../../../wit/v0.2/dialect.wit");
        let package = wit
            .lines()
            .find_map(|l| l.strip_prefix("package ota:dialect@"))
            .and_then(|v| v.strip_suffix(';'))
            .expect("the WIT names its package");
        assert_eq!(package, super::CONTRACT);
    }
}
