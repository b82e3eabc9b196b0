//! The OpenAPI 3.1 document, generated from the handlers' own `#[utoipa::path]`
//! annotations and request/response types as the routes are registered
//! ([`super::routes`]): a route cannot exist without its documentation, nor the
//! reverse. What every operation shares because a middleware or extractor does it
//! (problem answers, rate limits, `Idempotency-Key`, impersonation) is added here once.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, HeaderBuilder, ObjectBuilder, OpenApi, RefOr, Required, Response, Type,
};
use utoipa::{ToResponse, ToSchema};

/// An RFC 9457 problem: every error answer of the API.
#[derive(Serialize, ToSchema, ToResponse)]
#[response(
    description = "An RFC 9457 problem (application/problem+json)",
    content_type = "application/problem+json"
)]
#[schema(example = json!({
    "type": "https://atoll.dev/problems/not-found",
    "title": "Not found",
    "status": 404,
    "detail": "run not found"
}))]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What happened and what to do next.
    pub detail: String,
}

/// The base document: info, tags and the security scheme; paths come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "atoll",
        description = "The atoll HTTP API: orgs, apps and keys; agent packages; runs with \
                       their event streams, signals and journals; memory, connections and \
                       tools; webhooks out and triggers in. Errors are RFC 9457 problems; \
                       every POST takes an Idempotency-Key.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem), responses(Problem)),
    tags(
        (name = "orgs", description = "Orgs, created with the operator's admin key"),
        (name = "apps", description = "Apps of an org"),
        (name = "keys", description = "API keys (secrets are shown once)"),
        (name = "agents", description = "Agent packages and their immutable versions"),
        (name = "runs", description = "Runs, their events, signals and journals"),
        (name = "memory", description = "Memory shared by runs (org, app, end-user scopes)"),
        (name = "connections", description = "Credentials used by the broker; secrets are write-only"),
        (name = "tools", description = "HTTP tools agents may call"),
        (name = "webhooks", description = "Outbound webhook endpoints and their delivery log"),
        (name = "triggers", description = "Webhook and cron triggers that start runs"),
        (name = "audit", description = "Audit events"),
        (name = "usage", description = "Usage per period"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The finished document, built once.
pub fn document() -> &'static Value {
    static DOC: LazyLock<Value> = LazyLock::new(|| {
        let (_, mut doc) = super::routes().split_for_parts();
        complete(&mut doc);
        let mut doc = serde_json::to_value(&doc).unwrap_or(Value::Null);
        open_composed_schemas(&mut doc);
        describe_responses(&mut doc);
        replayed_secrets(&mut doc);
        doc
    });
    &DOC
}

/// Adds what middleware and extractors do for every operation.
fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("atl_...")
                .description(Some(
                    "An API key: the admin key (orgs only), an org key or an app key. The \
                     scopes an operation needs are listed in its security requirement.",
                ))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let v1 = path.starts_with("/v1/") && path != "/v1/openapi.json";
        for (method, op) in [
            ("get", item.get.as_mut()),
            ("put", item.put.as_mut()),
            ("post", item.post.as_mut()),
            ("delete", item.delete.as_mut()),
            ("patch", item.patch.as_mut()),
        ] {
            let Some(op) = op else { continue };
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            if v1 {
                shared_answers(op, secured, method);
            }
            if secured {
                add_parameter(op, end_user_header());
            }
            if v1 && method == "post" {
                add_parameter(op, idempotency_header());
            }
        }
    }
}

fn problem() -> RefOr<Response> {
    RefOr::Ref(utoipa::openapi::Ref::from_response_name("Problem"))
}

/// Answers any `/v1` operation can give: bad input, bad key, missing scope, rate limit,
/// server trouble.
fn shared_answers(op: &mut Operation, secured: bool, method: &str) {
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, response: RefOr<Response>| {
        responses.entry(status.to_owned()).or_insert(response);
    };
    add("400", problem());
    if secured {
        add("401", problem());
        add("403", problem());
    }
    if matches!(method, "post" | "put" | "patch") {
        add("413", problem());
        add("415", problem());
    }
    if method == "post" {
        // The Idempotency-Key middleware: still running (409), reused for another
        // request (422).
        add("409", problem());
        add("422", problem());
    }
    add("429", RefOr::T(rate_limited()));
    add("431", problem());
    add("500", problem());
    add("503", problem());
}

fn rate_limited() -> Response {
    let integer = || HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::Integer));
    let mut content = Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        "Problem",
    ))));
    content.example = None;
    ResponseBuilder::new()
        .description("A rate limit or quota was reached; retry after `retry-after` seconds")
        .content("application/problem+json", content)
        .header(
            "retry-after",
            integer().description(Some("Seconds to wait")).build(),
        )
        .header("ratelimit-limit", integer().build())
        .header("ratelimit-remaining", integer().build())
        .header("ratelimit-reset", integer().build())
        .build()
}

fn header(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(255)),
        ))
        .build()
}

fn end_user_header() -> Parameter {
    header(
        "x-atoll-end-user",
        "With an app key: act for this end-user (their external id); the request sees \
         only what that end-user may see.",
    )
}

fn idempotency_header() -> Parameter {
    header(
        "Idempotency-Key",
        "The same key with the same body answers the stored response (with \
         `idempotent-replayed: true`); with another body, 422; while the first is still \
         running, 409. Kept 24 hours.",
    )
}

fn add_parameter(op: &mut Operation, parameter: Parameter) {
    let parameters = op.parameters.get_or_insert_with(Vec::new);
    if !parameters.iter().any(|p| p.name == parameter.name) {
        parameters.push(parameter);
    }
}

/// A struct that refuses unknown fields gets `additionalProperties: false`; composed
/// with more fields (`#[serde(flatten)]` becomes `allOf`) that would refuse the very
/// fields it is composed with, so schemas that are parts of an `allOf` are left open.
fn open_composed_schemas(doc: &mut Value) {
    let mut parts = Vec::new();
    collect_allof_refs(doc, &mut parts);
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = parts.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = schemas.get_mut(&name) {
            open_schema(schema, &mut parts);
        }
    }
    // Inline parts of an allOf are opened where they stand.
    for schema in schemas.values_mut() {
        if let Some(all) = schema.get_mut("allOf").and_then(Value::as_array_mut) {
            for part in all {
                open_schema(part, &mut Vec::new());
            }
        }
    }
}

fn collect_allof_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get("allOf") {
                out.extend(parts.iter().filter_map(schema_ref));
            }
            map.values().for_each(|v| collect_allof_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_allof_refs(v, out)),
        _ => {}
    }
}

fn schema_ref(value: &Value) -> Option<String> {
    value
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")
        .map(str::to_owned)
}

/// Drops `additionalProperties: false` from a schema and the alternatives it is made
/// of (`oneOf`, `anyOf`, `allOf`), queueing the components those refer to.
fn open_schema(schema: &mut Value, refs: &mut Vec<String>) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        map.remove("additionalProperties");
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(alternatives)) = map.get_mut(key) {
            for alt in alternatives {
                refs.extend(schema_ref(alt));
                open_schema(alt, refs);
            }
        }
    }
}

/// Every response has a description (OpenAPI requires one): what its status means.
fn describe_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let Some(response) = response.as_object_mut() else {
                    continue;
                };
                let empty = response
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
                if empty && !response.contains_key("$ref") {
                    let text = match status.as_str() {
                        "200" => "OK",
                        "201" => "Created",
                        "202" => "Accepted",
                        "204" => "No content",
                        _ => "See the body",
                    };
                    response.insert("description".into(), Value::String(text.into()));
                }
            }
        }
    }
}

/// A secret is shown once: an idempotent replay of the answer that made it carries
/// `null` in its place and `secret_redacted: true` beside it (the Idempotency-Key
/// middleware never stores a secret). Every schema with a `secret` says so.
fn replayed_secrets(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut() {
        let mut parts = vec![&mut *schema];
        let mut objects = Vec::new();
        while let Some(part) = parts.pop() {
            let Some(map) = part.as_object_mut() else {
                continue;
            };
            if map
                .get("properties")
                .is_some_and(|p| p.get("secret").is_some())
            {
                objects.push(map);
                continue;
            }
            if let Some(Value::Array(all)) = map.get_mut("allOf") {
                parts.extend(all.iter_mut());
            }
        }
        for map in objects {
            let Some(properties) = map.get_mut("properties").and_then(Value::as_object_mut) else {
                continue;
            };
            if let Some(secret) = properties.get_mut("secret").and_then(Value::as_object_mut) {
                secret.insert("type".into(), serde_json::json!(["string", "null"]));
            }
            properties.insert(
                "secret_redacted".into(),
                serde_json::json!({
                    "type": "boolean",
                    "description": "Set on an idempotent replay: the secret was shown once and is null here."
                }),
            );
        }
    }
}
