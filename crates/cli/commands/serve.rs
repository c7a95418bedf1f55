//! `mmguard serve`: a run behind HTTP until SIGINT or SIGTERM, then finish what is in flight
//! and exit 0.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use mmguard_serve::{raise_descriptor_limit, serve, Admin, AppState, Pipeline, ServeConfig, Service};

use crate::args::ServeArgs;

/// The configuration file, if any, with the command line's options over it.
fn config(a: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut cfg = a.config.as_deref().map(ServeConfig::read).transpose()?.unwrap_or_default();
    cfg.listen = a.listen.unwrap_or(cfg.listen);
    cfg.limits.max_body_bytes = a.max_body_bytes.unwrap_or(cfg.limits.max_body_bytes);
    cfg.limits.max_batch = a.max_batch.unwrap_or(cfg.limits.max_batch);
    cfg.batching.max_wait_us = a.max_wait_us.unwrap_or(cfg.batching.max_wait_us);
    cfg.batching.workers = a.workers.unwrap_or(cfg.batching.workers);
    cfg.admin_token = a.admin_token.clone().or(cfg.admin_token);
    cfg.admin_open |= a.admin_open;
    cfg.drain_deadline_s = a.drain_deadline_s.unwrap_or(cfg.drain_deadline_s);
    if !(cfg.drain_deadline_s.is_finite() && cfg.drain_deadline_s >= 0.0) {
        anyhow::bail!("drain_deadline_s {}: expected seconds, 0 or more", cfg.drain_deadline_s);
    }
    Ok(cfg)
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let cfg = config(&a)?;
    let pipeline = Pipeline::load(&a.run, cfg.rules)?;
    let version = pipeline.version().to_string();
    let service = Arc::new(Service::new(pipeline, cfg.rules, cfg.batching));
    let descriptors = raise_descriptor_limit();
    if let Some(n) = descriptors.filter(|&n| n < cfg.connections.max_connections as u64 + 64) {
        tracing::warn!(
            descriptors = n,
            max_connections = cfg.connections.max_connections,
            "the descriptor limit is below the connection cap: accepting may fail before the cap refuses"
        );
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
        tracing::info!(config = %serde_json::to_string(&cfg)?, "settings (admin token not shown)");
        // the bound address, not the asked one: with port 0 the system picks it
        let address = listener.local_addr().context("reading the bound address")?;
        tracing::info!(
            "serving {} ({version}) on http://{address} , ready {:.2} s after start",
            a.run.display(),
            start.elapsed().as_secs_f64()
        );
        let admin = Admin::from_settings(cfg.admin_token.as_deref(), cfg.admin_open);
        if admin == Admin::Open {
            tracing::warn!(
                "admin endpoints open without a token: anyone who reaches {address} can change the gate or the run"
            );
        }
        let state = AppState::new(service, cfg.limits, admin);
        tokio::spawn(async {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                tokio::task::spawn_blocking(mmguard_serve::metrics::release_cached_memory);
            }
        });
        let (drain, signalled) = (state.clone(), Arc::new(tokio::sync::Notify::new()));
        let on_signal = signalled.clone();
        let serving = serve(listener, state, cfg.connections, async move {
            shutdown().await;
            drain.drain();
            tracing::info!("draining: not ready, new requests get 503, admitted ones finish");
            on_signal.notify_one();
        });
        let deadline = std::time::Duration::from_secs_f64(cfg.drain_deadline_s);
        tokio::select! {
            served = serving => served?,
            () = async { signalled.notified().await; tokio::time::sleep(deadline).await } => {
                tracing::warn!(deadline_s = cfg.drain_deadline_s, "drain deadline passed: open connections cut");
            }
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    // model calls still running on blocking threads get a moment, not a veto
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
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
