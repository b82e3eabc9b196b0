//! `ctx.llm.chat` on the server: the model name `provider/model` picks the app's
//! connection named `provider` (an end-user's own first), whose `provider` settings say
//! the wire format and base URL and whose secret is the API key; tools offered by name
//! are the app's registered tools; tokens count against the app's daily budget.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{LlmHttp, LlmTarget, Provider, ToolSpec};
use crate::broker::tools::HttpTools;
use crate::broker::BrokeredFetcher;
use crate::host::{ChatRequest, ChatResponse, DeltaSink, HostError, LlmClient, Tenant};
use crate::runs::admission::{Admission, Refused};

pub struct ProviderLlm {
    pub fetcher: Arc<BrokeredFetcher>,
    pub tools: Arc<HttpTools>,
    pub http: LlmHttp,
    /// The daily LLM token budget per app (tokens in + out).
    pub admission: Admission,
}

impl ProviderLlm {
    async fn provider(&self, tenant: &Tenant, name: &str) -> Result<LlmTarget, HostError> {
        let found = self
            .fetcher
            .connection(tenant, name)
            .await
            .map_err(|e| HostError::new("llm_unavailable", e.to_string()))?;
        let (row, connection) = found.ok_or_else(|| {
            HostError::new(
                "llm_provider_unknown",
                format!("this app has no connection '{name}' configured as an LLM provider"),
            )
        })?;
        let settings = row.public.get("provider").cloned().ok_or_else(|| {
            HostError::new(
                "llm_provider_unknown",
                format!("connection '{name}' is not an LLM provider (it has no provider settings)"),
            )
        })?;
        let provider: Provider = serde_json::from_value(settings).map_err(|e| {
            HostError::new(
                "llm_provider_unknown",
                format!("connection '{name}' has unreadable provider settings: {e}"),
            )
        })?;
        Ok(LlmTarget::new(name, provider, connection))
    }

    async fn tool_specs(
        &self,
        tenant: &Tenant,
        offered: &[Value],
    ) -> Result<Vec<ToolSpec>, HostError> {
        let mut specs = Vec::with_capacity(offered.len());
        for tool in offered {
            let name = tool
                .as_str()
                .or_else(|| tool.get("name").and_then(Value::as_str))
                .ok_or_else(|| HostError::new("bad_request", "tools are offered by name"))?;
            let spec = self.tools.spec(tenant, name).await?;
            specs.push(ToolSpec {
                name: name.to_owned(),
                description: spec.description,
                input_schema: spec.input_schema,
            });
        }
        Ok(specs)
    }
}

#[async_trait]
impl LlmClient for ProviderLlm {
    async fn chat(
        &self,
        tenant: &Tenant,
        request: ChatRequest,
        deltas: DeltaSink,
    ) -> Result<ChatResponse, HostError> {
        let (provider_name, model) = request.model.split_once('/').ok_or_else(|| {
            HostError::new(
                "bad_request",
                "model names are provider/model, e.g. openai/gpt-4o",
            )
        })?;
        match self.admission.tokens_left(&tenant.app_id).await {
            Ok(_) => {}
            Err(Refused::Limit { decision, .. }) => {
                return Err(HostError::new(
                    "llm_budget_exhausted",
                    format!(
                        "this app used its {} LLM tokens for the day; retry in {} s",
                        decision.limit, decision.retry_after_secs
                    ),
                ))
            }
            Err(Refused::Backend(e)) => {
                return Err(HostError::new("llm_unavailable", e.to_string()))
            }
        }
        let provider = self.provider(tenant, provider_name).await?;
        let tools = self.tool_specs(tenant, &request.tools).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let response = self
            .http
            .chat(&provider, model, &request, &tools, deltas, deadline)
            .await?;
        let used = response.usage.input_tokens + response.usage.output_tokens;
        self.admission.spend_tokens(&tenant.app_id, used).await;
        Ok(response)
    }
}
