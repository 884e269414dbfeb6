//! The operator's HTTP endpoint (`metrics.listen`): `/metrics`
//! (OpenMetrics text), `/healthz` and `/readyz` ([`crate::ops::health`]).

use std::sync::Arc;

use crate::ops::health::HealthCheck;

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is stopped.
pub(crate) async fn serve_http(listener: tokio::net::TcpListener, health: Arc<HealthCheck>) {
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    let for_metrics = Arc::clone(&health);
    let for_health = Arc::clone(&health);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let resolver = Arc::clone(&for_metrics.resolver);
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        resolver.metrics_text(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let verdict = for_health.check();
                async move {
                    match verdict {
                        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = health.resolver.metrics().is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: listeners and zones are not up\n",
                        )
                    }
                }
            }),
        );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "metrics endpoint stopped");
    }
}
