//! Serving the router on a bound listener until shutdown is requested.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::engine::Engine;

/// Serves webhooks, the API and health checks until `shutdown` completes,
/// then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    axum::serve(listener, super::router(engine))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!(%address, "stopped listening");
    Ok(())
}
