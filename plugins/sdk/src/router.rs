//! Method + path routing inside a plugin, with the same pattern rules the host uses to
//! dispatch to the plugin (`ota-route-pattern`), so the manifest and the router never drift.

use crate::bindings::ota::dialect::types;
use crate::{Request, Response};

/// A route handler as a plain function pointer. [`Router::route`] takes any
/// `Fn(&Request) -> R` where `R` is a [`Response`] or a `Result` of one (see
/// [`IntoResponse`]); this alias names the simplest kind.
pub type Handler = fn(&Request) -> Response;

/// What a handler may return: a [`Response`], or a `Result` whose error renders itself in the
/// dialect's wire envelope. A dialect implements this once for its error type, and
/// `From<HostError>` for it, so handlers use `?` on host calls:
///
/// ```ignore
/// impl IntoResponse for ApiError {
///     fn into_response(self) -> Response { Response::json(self.status(), &self.body()) }
/// }
/// // Routed by "/devices/{product}/{sn}", so both parameters are there.
/// fn check(req: &Request) -> Result<Response, ApiError> {
///     let product = req.param("product").unwrap_or_default();
///     let device = catalog::get_device(product, req.param("sn").unwrap_or_default())?;
///     Ok(Response::json(200, &json!({ "sn": device.sn })))
/// }
/// ```
pub trait IntoResponse {
    /// The answer to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

type BoxedHandler = Box<dyn Fn(&Request) -> Response>;

fn boxed<R: IntoResponse>(handler: impl Fn(&Request) -> R + 'static) -> BoxedHandler {
    Box::new(move |req| handler(req).into_response())
}

/// Why no route took a request, for the handler set with [`Router::unrouted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrouted {
    /// The methods the path has routes for, upper-case and sorted: empty when no route has
    /// the path (answer "not found"), else the request's method is not among them (answer
    /// "method not allowed" with an `Allow` header of these).
    pub allow: Vec<String>,
}

impl Unrouted {
    /// The `Allow` header value: the methods joined by `, `.
    pub fn allow_header(&self) -> String {
        self.allow.join(", ")
    }
}

/// The handler for requests no route takes.
pub type UnroutedHandler = fn(&Request, &Unrouted) -> Response;

struct Entry {
    method: String,
    /// As written; [`Router::route`] checked it.
    pattern: String,
    handler: BoxedHandler,
}

/// The dialect's routes. The manifest lists exactly these, and the path spaces claimed
/// with [`Router::claim`].
pub struct Router {
    entries: Vec<Entry>,
    /// As written; [`Router::routes`] checks them (only the manifest lists claims).
    claims: Vec<String>,
    fallback: BoxedHandler,
    unrouted: Option<UnroutedHandler>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

fn not_found(_: &Request) -> Response {
    Response::text(404, "not found")
}

impl Router {
    /// No routes; unmatched requests get a plain 404 unless [`Router::fallback`] is set.
    pub fn new() -> Self {
        Router {
            entries: Vec::new(),
            claims: Vec::new(),
            fallback: boxed(not_found),
            unrouted: None,
        }
    }

    /// Add a route. An invalid pattern, or one ending in `{*name}` (claim a prefix with
    /// [`Router::claim`] instead), is a bug in the plugin: [`Router::routes`] panics on it,
    /// so the host refuses the plugin when it reads the manifest at load time.
    pub fn route<R: IntoResponse>(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        // A fresh instance builds the router for every request, so nothing is checked or
        // parsed here: the manifest checked every pattern once, and dispatch matches them as
        // written (see `ota_route_pattern::match_path`).
        self.entries.push(Entry {
            method: method.to_ascii_uppercase(),
            pattern: path.to_string(),
            handler: boxed(handler),
        });
        self
    }

    /// Add a `GET` route.
    pub fn get<R: IntoResponse>(
        self,
        path: &str,
        handler: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("GET", path, handler)
    }

    /// Add a `POST` route.
    pub fn post<R: IntoResponse>(
        self,
        path: &str,
        handler: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("POST", path, handler)
    }

    /// Add a `PUT` route.
    pub fn put<R: IntoResponse>(
        self,
        path: &str,
        handler: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("PUT", path, handler)
    }

    /// Add a `DELETE` route.
    pub fn delete<R: IntoResponse>(
        self,
        path: &str,
        handler: impl Fn(&Request) -> R + 'static,
    ) -> Self {
        self.route("DELETE", path, handler)
    }

    /// The handler for requests no route matches (e.g. a path claimed for another method).
    pub fn fallback<R: IntoResponse>(mut self, handler: impl Fn(&Request) -> R + 'static) -> Self {
        self.fallback = boxed(handler);
        self
    }

    /// Claim every path under a prefix, e.g. `/v2/{*rest}` (contract 0.2.6 hosts): requests
    /// there that no route takes (unknown paths, other methods) reach this plugin and its
    /// [`Router::unrouted`] handler instead of the host's own "not found". Routes of other
    /// plugins still win, and so does a deeper claim. A pattern that does not end in
    /// `{*name}` makes [`Router::routes`] panic, like an invalid route.
    pub fn claim(mut self, prefix: &str) -> Self {
        self.claims.push(prefix.to_string());
        self
    }

    /// The handler for requests no route takes: told which methods the path has routes
    /// for, it answers "not found" or "method not allowed" (with `Allow`) in the dialect's
    /// shape. Replaces [`Router::fallback`] when set.
    pub fn unrouted(mut self, handler: UnroutedHandler) -> Self {
        self.unrouted = Some(handler);
        self
    }

    /// The routes for the manifest: each route, then each claim under method `*`. Panics
    /// on a route or claim [`Router::route`] and [`Router::claim`] should not have been
    /// given.
    pub fn routes(&self) -> Vec<types::Route> {
        let routes = self.entries.iter().map(|e| {
            let fallback = ota_route_pattern::check(&e.pattern).unwrap_or_else(|e| panic!("{e}"));
            // The host ranks a `{*rest}` pattern below every route; so must this router,
            // which tries routes in order: prefixes are claimed with `claim`, never routed.
            assert!(
                !fallback,
                "{:?} ends in {{*name}}: claim the prefix with Router::claim",
                e.pattern
            );
            types::Route {
                method: e.method.clone(),
                path: e.pattern.clone(),
            }
        });
        let claims = self.claims.iter().map(|c| {
            let fallback = ota_route_pattern::check(c).unwrap_or_else(|e| panic!("{e}"));
            assert!(fallback, "a claim ends in {{*name}}: {c:?}");
            types::Route {
                method: "*".into(),
                path: c.clone(),
            }
        });
        routes.chain(claims).collect()
    }

    /// Find the route for a request and run it.
    pub fn dispatch(&self, req: types::Request) -> Response {
        let mut allow = Vec::new();
        for e in &self.entries {
            let Some(params) = ota_route_pattern::match_path(&e.pattern, &req.path) else {
                continue;
            };
            if e.method == "*" || e.method.eq_ignore_ascii_case(&req.method) {
                return (e.handler)(&Request::new(req, params));
            }
            allow.push(e.method.clone());
        }
        match self.unrouted {
            Some(handler) => {
                allow.sort_unstable();
                allow.dedup();
                handler(&Request::new(req, Vec::new()), &Unrouted { allow })
            }
            None => (self.fallback)(&Request::new(req, Vec::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(method: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> types::Request {
        types::Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: br#"{"a":1}"#.to_vec(),
            base_url: "http://h".into(),
            host_url: "http://h".into(),
            request_id: "r".into(),
        }
    }

    fn show(req: &Request) -> Response {
        Response::text(
            200,
            format!(
                "{}|{}|{}|{:?}|{:?}",
                req.param("id").unwrap_or("-"),
                req.query_param("q").unwrap_or_default(),
                req.header("X-Thing").unwrap_or("-"),
                req.basic_auth(),
                req.json::<serde_json::Value>().ok().map(|v| v["a"].clone()),
            ),
        )
    }

    #[test]
    fn routes_by_method_and_pattern_with_helpers() {
        let router = Router::new()
            .get("/items/{id}", show)
            .fallback(|_| Response::text(405, "nope"));
        assert_eq!(router.routes().len(), 1);
        let r = router.dispatch(raw(
            "GET",
            "/items/42",
            "q=a%20b+c&z=1",
            &[("x-thing", "yes"), ("authorization", "Basic dXNlcjpwYXNz")],
        ));
        assert_eq!(r.status(), 200);
        assert_eq!(
            std::str::from_utf8(r.body_bytes()).unwrap(),
            r#"42|a b c|yes|Some(("user", "pass"))|Some(Number(1))"#
        );
        assert_eq!(
            router.dispatch(raw("POST", "/items/42", "", &[])).status(),
            405
        );
        assert_eq!(
            router.dispatch(raw("GET", "/items/", "", &[])).status(),
            405
        );
    }

    #[test]
    fn claims_reach_the_unrouted_handler_with_the_allowed_methods() {
        let router = Router::new()
            .get("/v2/items/{id}", show)
            .put("/v2/items/{id}", show)
            .claim("/v2/{*rest}")
            .unrouted(|_, u| {
                let status = if u.allow.is_empty() { 404 } else { 405 };
                Response::text(status, "").header("Allow", u.allow_header())
            });
        let manifest: Vec<(String, String)> = router
            .routes()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect();
        assert_eq!(manifest[2], ("*".into(), "/v2/{*rest}".into()));
        let r = router
            .dispatch(raw("DELETE", "/v2/items/7", "", &[]))
            .into_inner();
        assert_eq!(r.status, 405);
        assert!(r.headers.contains(&("Allow".into(), "GET, PUT".into())));
        let r = router.dispatch(raw("POST", "/v2/nope", "", &[]));
        assert_eq!(r.status(), 404);
        assert_eq!(
            router.dispatch(raw("GET", "/v2/items/7", "", &[])).status(),
            200
        );
    }

    #[test]
    #[should_panic(expected = "claim the prefix")]
    fn a_route_is_never_a_prefix() {
        let _ = Router::new().get("/v2/{*rest}", show).routes();
    }

    #[test]
    #[should_panic(expected = "braces must enclose a whole segment")]
    fn the_manifest_refuses_an_invalid_route() {
        let _ = Router::new().get("/v2/x{id}", show).routes();
    }

    #[test]
    #[should_panic(expected = "a claim ends in")]
    fn a_claim_must_be_a_prefix() {
        let _ = Router::new().claim("/v2/items").routes();
    }

    #[test]
    fn bearer_and_json_responses() {
        let r = Request::new(
            raw("GET", "/", "", &[("Authorization", "bearer  tok ")]),
            vec![],
        );
        assert_eq!(r.bearer_token(), Some("tok"));
        assert_eq!(r.basic_auth(), None);
        let resp = Response::json(201, &serde_json::json!({"k": "v"})).header("x", "y");
        let inner = resp.into_inner();
        assert_eq!(inner.status, 201);
        assert_eq!(inner.body, br#"{"k":"v"}"#);
        assert!(inner.headers.iter().any(|(k, _)| k == "content-type"));
    }
}
