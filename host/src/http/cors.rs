//! CORS, answered by the host for browser apps served from other origins: a plugin mount's
//! `[plugins.<name>.cors]` and the OSS upload endpoint's `[blobs.oss-cors]`. Built on
//! tower-http's `CorsLayer`: a preflight is answered before any plugin runs (it costs no
//! instance), and the plugin's answers get the `Access-Control-*` headers added.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::config::{Config, CorsConfig};

/// The CORS layers of the configured mounts, by plugin name (the mount's key).
pub struct ByMount(HashMap<String, CorsLayer>);

impl ByMount {
    pub fn new(config: &Config) -> Self {
        ByMount(
            config
                .mounts
                .iter()
                .filter_map(|(name, m)| Some((name.clone(), layer(m.cors.as_ref()?))))
                .collect(),
        )
    }

    /// The layer of plugin `name`'s mount, when it has CORS.
    pub fn of(&self, name: &str) -> Option<&CorsLayer> {
        self.0.get(name)
    }
}

/// The layer for `c`. Values were checked when the configuration was loaded; one that does
/// not parse here is left out rather than failing a request.
pub fn layer(c: &CorsConfig) -> CorsLayer {
    let origin = if c.any_origin() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            c.allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let headers = if c.allow_headers.is_empty() {
        AllowHeaders::mirror_request()
    } else {
        AllowHeaders::list(names(&c.allow_headers))
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(
            c.allow_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect::<Vec<_>>(),
        )
        .allow_headers(headers)
        .expose_headers(names(&c.expose_headers))
        .max_age(Duration::from_secs(c.max_age_secs))
        .allow_credentials(c.allow_credentials)
}

fn names(list: &[String]) -> Vec<HeaderName> {
    list.iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect()
}

/// The method a CORS preflight asks about: an `OPTIONS` with an `Origin` and an
/// `Access-Control-Request-Method`. A plain `OPTIONS` is not one.
pub fn preflight(parts: &Parts) -> Option<Method> {
    if parts.method != Method::OPTIONS || !parts.headers.contains_key(header::ORIGIN) {
        return None;
    }
    let asked = parts.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    Method::from_bytes(asked.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::{Layer, ServiceExt};

    use super::*;

    fn config(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            expose_headers: vec!["etag".into()],
            ..CorsConfig::default()
        }
    }

    async fn call(c: &CorsConfig, req: Request<Body>) -> axum::http::Response<Body> {
        let inner = tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(
                axum::http::Response::builder()
                    .status(201)
                    .header("etag", "\"X\"")
                    .body(Body::empty())
                    .unwrap(),
            )
        });
        layer(c).layer(inner).oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn a_listed_origin_gets_its_preflight_and_answers() {
        let c = config(&["https://console.example.com"]);
        let pre = Request::options("/x")
            .header("origin", "https://console.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key, content-type")
            .body(Body::empty())
            .unwrap();
        let r = call(&c, pre).await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(
            h["access-control-allow-origin"],
            "https://console.example.com"
        );
        assert_eq!(h["access-control-allow-headers"], "x-api-key, content-type");
        assert_eq!(h["access-control-max-age"], "600");
        let get = Request::get("/x")
            .header("origin", "https://console.example.com")
            .body(Body::empty())
            .unwrap();
        let r = call(&c, get).await;
        assert_eq!(r.status(), 201, "the answer itself passes through");
        assert_eq!(r.headers()["access-control-expose-headers"], "etag");
    }

    #[tokio::test]
    async fn another_origin_gets_no_grant() {
        let c = config(&["https://console.example.com"]);
        let get = Request::get("/x")
            .header("origin", "https://evil.example")
            .body(Body::empty())
            .unwrap();
        let r = call(&c, get).await;
        assert!(!r.headers().contains_key("access-control-allow-origin"));
    }

    #[test]
    fn only_a_full_preflight_is_one() {
        let parts = |req: Request<()>| req.into_parts().0;
        let full = Request::options("/x")
            .header("origin", "https://a.example")
            .header("access-control-request-method", "PUT")
            .body(())
            .unwrap();
        assert_eq!(preflight(&parts(full)), Some(Method::PUT));
        let plain = Request::options("/x").body(()).unwrap();
        assert_eq!(preflight(&parts(plain)), None);
        let get = Request::get("/x")
            .header("origin", "https://a.example")
            .header("access-control-request-method", "PUT")
            .body(())
            .unwrap();
        assert_eq!(preflight(&parts(get)), None);
    }
}
