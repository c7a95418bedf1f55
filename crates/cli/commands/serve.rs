//! `mmguard serve`: a run behind HTTP until SIGINT or SIGTERM, then finish what is in flight
//! and exit 0.

use std::sync::Arc;

use anyhow::Context;
use mmguard_serve::{app, AppState, Limits, Pipeline, RuleConfig};

use crate::args::ServeArgs;

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let pipeline = Arc::new(Pipeline::load(&a.run, RuleConfig::default())?);
    let limits = Limits { max_body_bytes: a.max_body_bytes, max_batch: a.max_batch };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("binding {}", a.listen))?;
        tracing::info!("serving {} ({}) on http://{}", a.run.display(), pipeline.version(), a.listen);
        let state = AppState { admin_token: a.admin_token.map(Into::into), ..AppState::new(pipeline, limits) };
        axum::serve(listener, app(state)).with_graceful_shutdown(shutdown()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
