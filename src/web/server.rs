//! Serving the router on a bound listener until shutdown is requested.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::WebOptions;
use crate::engine::Engine;

/// Serves webhooks, the API, the pages and health checks without access
/// control until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, engine, &WebOptions::default(), shutdown).await
}

/// Like [`serve`], with `options` deciding access control.
pub async fn serve_with(
    listener: TcpListener,
    engine: Arc<Engine>,
    options: &WebOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let auth = options.api_token.is_some();
    tracing::info!(%address, auth, "listening");
    axum::serve(listener, super::router_with(engine, options))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!(%address, "stopped listening");
    Ok(())
}
