//! Method + path routing inside a plugin, with the same pattern rules the host uses to
//! dispatch to the plugin (`ota-route-pattern`), so the manifest and the router never drift.

use ota_route_pattern::Pattern;

use crate::bindings::ota::dialect::types;
use crate::{Request, Response};

/// A route handler.
pub type Handler = fn(&Request) -> Response;

struct Entry {
    method: String,
    pattern: Pattern,
    handler: Handler,
}

/// The dialect's routes. The manifest lists exactly these.
pub struct Router {
    entries: Vec<Entry>,
    fallback: Handler,
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
            fallback: not_found,
        }
    }

    /// Add a route. Panics on an invalid pattern: that is a bug in the plugin, caught by the
    /// host when it reads the manifest at load time, never at request time.
    pub fn route(mut self, method: &str, path: &str, handler: Handler) -> Self {
        let pattern = Pattern::parse(path).unwrap_or_else(|e| panic!("{e}"));
        self.entries.push(Entry {
            method: method.to_ascii_uppercase(),
            pattern,
            handler,
        });
        self
    }

    /// Add a `GET` route.
    pub fn get(self, path: &str, handler: Handler) -> Self {
        self.route("GET", path, handler)
    }

    /// Add a `POST` route.
    pub fn post(self, path: &str, handler: Handler) -> Self {
        self.route("POST", path, handler)
    }

    /// Add a `PUT` route.
    pub fn put(self, path: &str, handler: Handler) -> Self {
        self.route("PUT", path, handler)
    }

    /// Add a `DELETE` route.
    pub fn delete(self, path: &str, handler: Handler) -> Self {
        self.route("DELETE", path, handler)
    }

    /// The handler for requests no route matches (e.g. a path claimed for another method).
    pub fn fallback(mut self, handler: Handler) -> Self {
        self.fallback = handler;
        self
    }

    /// The routes for the manifest.
    pub fn routes(&self) -> Vec<types::Route> {
        self.entries
            .iter()
            .map(|e| types::Route {
                method: e.method.clone(),
                path: e.pattern.as_str().to_string(),
            })
            .collect()
    }

    /// Find the route for a request and run it.
    pub fn dispatch(&self, req: types::Request) -> Response {
        for e in &self.entries {
            if e.method != "*" && !e.method.eq_ignore_ascii_case(&req.method) {
                continue;
            }
            if let Some(params) = e.pattern.matches(&req.path) {
                return (e.handler)(&Request::new(req, params));
            }
        }
        (self.fallback)(&Request::new(req, Vec::new()))
    }
}
