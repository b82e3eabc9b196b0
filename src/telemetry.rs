//! Logs and traces: the one place the process's `tracing` subscriber is built.
//!
//! - Logs go to stderr, filtered by `ATOLL_LOG` (default per command), as text or, with
//!   `ATOLL_LOG_FORMAT=json`, one JSON object per line.
//! - With `OTEL_EXPORTER_OTLP_ENDPOINT` set (the standard OpenTelemetry variable, e.g.
//!   `http://collector:4318`), spans are exported over OTLP/HTTP (protobuf) in batches
//!   from a thread of their own; `OTEL_SERVICE_NAME` names the service (default
//!   `atoll`), and the exporter's other standard `OTEL_*` variables apply. The span names
//!   of a run's path are in the README ("Traces").

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes what is still batched.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the span exporter (a no-op without one).
    pub fn shutdown(self) {
        if let Some(provider) = self.traces {
            if let Err(e) = provider.shutdown() {
                eprintln!("atoll: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the subscriber for this process. `default_log` is the filter when
/// `ATOLL_LOG` is unset.
pub fn init(default_log: &str) -> Telemetry {
    let filter =
        EnvFilter::try_from_env("ATOLL_LOG").unwrap_or_else(|_| EnvFilter::new(default_log));
    let json = std::env::var("ATOLL_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let (traces, error) = match otlp_provider() {
        Ok(provider) => (provider, None),
        Err(e) => (None, Some(e)),
    };
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("atoll"))
            .with_filter(EnvFilter::new("atoll=info"))
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .init();
    if let Some(e) = error {
        tracing::warn!(error = %e, "OTEL_EXPORTER_OTLP_ENDPOINT is set but traces cannot be exported; running without them");
    } else if traces.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Telemetry { traces }
}

fn otlp_provider() -> Result<Option<SdkTracerProvider>, String> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none_or(|v| v.is_empty()) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "atoll".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    Ok(Some(provider))
}
