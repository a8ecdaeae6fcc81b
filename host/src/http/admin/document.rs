//! What the admin API's document says beyond each handler's own annotation: the refusals
//! every operation shares, and links from each operation that creates a resource to the
//! operations that address it, so that client generators and fuzzers can chain them.

use serde_json::{Map, Value, json};
use utoipa::openapi::path::{Operation, PathItem};

/// The operations of a path item, with their methods.
#[cfg(test)]
pub(super) fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("PATCH", &item.patch),
        ("HEAD", &item.head),
        ("OPTIONS", &item.options),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
}

/// [`operations`], to change them.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("GET", &mut item.get),
        ("PUT", &mut item.put),
        ("POST", &mut item.post),
        ("DELETE", &mut item.delete),
        ("PATCH", &mut item.patch),
        ("HEAD", &mut item.head),
        ("OPTIONS", &mut item.options),
        ("TRACE", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// The refusals every operation shares, added to each operation where they can happen so
/// no annotation can forget one: 401 and 403 (the [`super::Operator`] extractor guards every route),
/// 400 wherever something is parsed (a path parameter, a query, a body: axum's own
/// rejections included), 413 wherever a body is read. A status an annotation already
/// documents keeps its route-specific description. Responses left without a description get
/// the status's reason phrase, since OpenAPI requires one.
pub(super) struct SharedRefusals;

impl SharedRefusals {
    const UNAUTHORIZED: &str = "no operator key, or an unknown or revoked one";
    const FORBIDDEN: &str = "the key is not an operator key";
    const BAD_REQUEST: &str =
        "a malformed path parameter, query or body, or values the operation refuses";
    const TOO_LARGE: &str = "the body is over the size limit";
}

impl utoipa::Modify for SharedRefusals {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
        let error = || {
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build()
        };
        for item in api.paths.paths.values_mut() {
            for (_, op) in operations_mut(item) {
                let parses = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let mut shared = vec![("401", Self::UNAUTHORIZED), ("403", Self::FORBIDDEN)];
                if parses {
                    shared.push(("400", Self::BAD_REQUEST));
                }
                if op.request_body.is_some() {
                    shared.push(("413", Self::TOO_LARGE));
                }
                let responses = &mut op.responses.responses;
                for (status, description) in shared {
                    responses.entry(status.to_string()).or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content("application/json", error())
                                .build(),
                        )
                    });
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        r.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("answer")
                            .to_string();
                    }
                }
            }
        }
    }
}

/// Where a created resource's identifier is found in the answer of the `POST` that created
/// it: (the creating path, the path parameter that names the resource below that path, a
/// JSON pointer into the `201` body). Tenants and products are addressed by name and serial
/// number, not by their numeric `id`, which is why this is said rather than left to guesswork.
const CREATED: &[(&str, &str, &str)] = &[
    ("/admin/api/v1/tenants", "tenant", "/name"),
    ("/admin/api/v1/api-keys", "id", "/info/id"),
    ("/admin/api/v1/tenants/{tenant}/products", "sn", "/sn"),
    ("/admin/api/v1/tenants/{tenant}/logins", "id", "/id"),
    ("/admin/api/v1/tenants/{tenant}/app-keys", "id", "/info/id"),
    ("/admin/api/v1/tenants/{tenant}/releases", "id", "/id"),
    ("/admin/api/v1/tenants/{tenant}/campaigns", "id", "/id"),
];

/// Adds OpenAPI links to each creating operation's `201`, one per operation below the
/// created resource's path, named by that operation's `operationId`. The resource's parameter
/// comes from the answer, the creating path's own parameters (`{tenant}`) from the request.
/// This works on the serialized document: utoipa 5.5 writes a `Link`'s fields in snake case
/// (`operation_id`), which no OpenAPI tool reads.
pub(super) fn add_links(doc: &mut Value) {
    for (producer, param, pointer) in CREATED {
        let below = format!("{producer}/{{{param}}}");
        let mut parameters = Map::new();
        parameters.insert(
            param.to_string(),
            json!(format!("$response.body#{pointer}")),
        );
        for p in producer
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            parameters.insert(p.to_string(), json!(format!("$request.path.{p}")));
        }
        let mut links = Map::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            if *path != below && !path.starts_with(&format!("{below}/")) {
                continue;
            }
            for op in item.as_object().into_iter().flat_map(|item| item.values()) {
                if let Some(id) = op["operationId"].as_str() {
                    links.insert(
                        id.to_string(),
                        json!({ "operationId": id, "parameters": parameters }),
                    );
                }
            }
        }
        let created = format!("/paths/{}/post/responses/201", producer.replace('/', "~1"));
        if let Some(Value::Object(created)) = doc.pointer_mut(&created) {
            created.insert("links".into(), Value::Object(links));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Every creating operation links to what addresses its resource, and every link names
    /// an operation that exists and sets only parameters that operation has.
    #[test]
    fn links_name_real_operations_and_parameters() {
        let doc = super::super::openapi();
        let mut params: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let names = op["parameters"].as_array().into_iter().flatten();
                params.insert(
                    op["operationId"].as_str().unwrap(),
                    names.map(|p| p["name"].as_str().unwrap()).collect(),
                );
            }
        }
        for (producer, _, _) in super::CREATED {
            let links = doc["paths"][producer]["post"]["responses"]["201"]["links"]
                .as_object()
                .unwrap_or_else(|| panic!("{producer} has no links"));
            assert!(!links.is_empty(), "{producer} links to nothing");
            for (name, link) in links {
                let target = &params[link["operationId"].as_str().unwrap()];
                for p in link["parameters"].as_object().unwrap().keys() {
                    assert!(target.contains(&p.as_str()), "{producer} -> {name}: no {p}");
                }
            }
        }
        let tenants = &doc["paths"]["/admin/api/v1/tenants"]["post"]["responses"]["201"];
        assert_eq!(
            tenants["links"]["create_product"]["parameters"]["tenant"],
            "$response.body#/name"
        );
    }
}
