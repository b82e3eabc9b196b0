//! HTTP tools: what an app registers (`PUT /v1/tools/{name}`) and the invoker behind
//! `ctx.tools.call`, which validates the arguments, calls the endpoint through the broker
//! (credential injected when the tool names a connection) and validates the result.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::brokered::BrokeredFetcher;
use super::destination::url_host;
use super::host::host_allowed;
use super::{FetchLimits, FetchRequest};
use crate::host::{Fetcher, HostError, Tenant, ToolInvoker};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "description": "Look up an order by id",
    "input_schema": { "type": "object", "properties": { "order_id": { "type": "string" } }, "required": ["order_id"] },
    "method": "POST", "url": "https://api.example.com/orders/lookup", "connection": "shop" }))]
pub struct ToolSpec {
    /// What the tool does (the model reads it), 1 to 4096 characters.
    pub description: String,
    /// JSON Schema 2020-12 of the tool's input.
    #[schema(value_type = Object)]
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// HTTP method (default POST).
    #[serde(default = "post")]
    pub method: String,
    /// The endpoint the broker calls with the input as JSON.
    pub url: String,
    /// A connection of the app whose credential the broker adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn post() -> String {
    "POST".into()
}

fn compile(schema: &Value, what: &str) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options()
        .build(schema)
        .map_err(|e| format!("{what} is not a valid JSON Schema 2020-12: {e}"))
}

impl ToolSpec {
    pub fn validate(&self) -> Result<(), String> {
        if self.description.trim().is_empty() || self.description.len() > 4096 {
            return Err("description is 1 to 4096 characters (the model reads it)".into());
        }
        compile(&self.input_schema, "input_schema")?;
        if let Some(schema) = &self.output_schema {
            compile(schema, "output_schema")?;
        }
        let url = url::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("url must be http(s) with a host".into());
        }
        if !matches!(
            self.method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
        ) {
            return Err("method is GET, POST, PUT, PATCH or DELETE".into());
        }
        Ok(())
    }
}

/// The app's tools over the store, called through the broker.
pub struct HttpTools {
    pub store: Arc<dyn Store>,
    pub fetcher: Arc<BrokeredFetcher>,
}

fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Option<String> {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

impl HttpTools {
    pub async fn spec(&self, tenant: &Tenant, name: &str) -> Result<ToolSpec, HostError> {
        let row = self
            .store
            .get_tool(&tenant.app_id, name)
            .await
            .map_err(|_| {
                HostError::new(
                    "storage_unavailable",
                    "the tool registry is unavailable; try again",
                )
            })?
            .ok_or_else(|| {
                HostError::new("tool_not_found", format!("this app has no tool '{name}'"))
            })?;
        serde_json::from_value(row.spec).map_err(|_| {
            HostError::new(
                "tool_invalid",
                format!("tool '{name}' is stored in an unreadable form"),
            )
        })
    }
}

#[async_trait]
impl ToolInvoker for HttpTools {
    async fn call(&self, tenant: &Tenant, name: &str, args: Value) -> Result<Value, HostError> {
        let spec = self.spec(tenant, name).await?;
        let input = compile(&spec.input_schema, "input_schema")
            .map_err(|e| HostError::new("tool_invalid", e))?;
        if let Some(why) = schema_errors(&input, &args) {
            return Err(HostError::new(
                "tool_args_invalid",
                format!("arguments of '{name}' do not match its input schema: {why}"),
            ));
        }
        let mut url = url::Url::parse(&spec.url)
            .map_err(|e| HostError::new("tool_invalid", e.to_string()))?;
        let body = if spec.method == "GET" || spec.method == "DELETE" {
            if let Value::Object(map) = &args {
                let mut query = url.query_pairs_mut();
                for (k, v) in map {
                    query.append_pair(k, &v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                }
            }
            None
        } else {
            Some(bytes::Bytes::from(args.to_string()))
        };
        let mut headers = vec![("accept".to_owned(), "application/json".to_owned())];
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let request = FetchRequest {
            method: spec.method.clone(),
            url: url.clone(),
            headers,
            body,
            sensitive_headers: Vec::new(),
            redirect: Default::default(),
        };
        let limits = FetchLimits {
            max_response_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_millis(spec.timeout_ms.unwrap_or(30_000).min(120_000)),
            max_redirects: 3,
        };
        // Compared in the broker's one host form (an IPv6 literal without brackets).
        let tool_host = vec![url_host(&url).unwrap_or_default()];
        let allow: crate::host::HostCheck =
            Arc::new(move |host: &str| host_allowed(&tool_host, host));
        let response = self
            .fetcher
            .fetch(tenant, spec.connection.as_deref(), request, &limits, allow)
            .await
            .map_err(|e| {
                HostError::new("tool_failed", format!("calling tool '{name}' failed: {e}"))
            })?;
        if !(200..300).contains(&response.status) {
            return Err(HostError::new(
                "tool_failed",
                format!("tool '{name}' answered HTTP {}", response.status),
            ));
        }
        let result: Value = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body).map_err(|_| {
                HostError::new(
                    "tool_bad_response",
                    format!("tool '{name}' did not answer JSON"),
                )
            })?
        };
        if let Some(schema) = &spec.output_schema {
            let output =
                compile(schema, "output_schema").map_err(|e| HostError::new("tool_invalid", e))?;
            if let Some(why) = schema_errors(&output, &result) {
                return Err(HostError::new(
                    "tool_bad_response",
                    format!("the result of '{name}' does not match its output schema: {why}"),
                ));
            }
        }
        Ok(result)
    }
}
