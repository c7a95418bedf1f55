//! The TCP side of `mmguard serve`: an accept loop over hyper's HTTP/1 connections with the
//! limits a service on a plant network needs and `axum::serve` does not set — a timeout on
//! request headers that is also the idle keep-alive timeout, and a cap on open connections
//! whose excess is answered 503 and closed at once (so idle sockets cannot use up the process's
//! descriptors). Body, rate and request deadlines are per request: [`crate::Limits`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::http::{app, AppState};

/// Limits of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Most connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Milliseconds a client may take to send a request's headers, counted from the end of the
    /// previous answer on a kept-alive connection: a half-sent header and an idle socket are
    /// both closed after it.
    pub header_timeout_ms: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        // 4,096 connections fit the usual descriptor limit once raised to its hard maximum
        // (`raise_descriptor_limit`), and leave room for the run's files and the loopback clients
        Self { max_connections: 4096, header_timeout_ms: 10_000 }
    }
}

/// The body of the answer to a connection over the cap.
const REFUSED_BODY: &str =
    r#"{"error":{"field":"connections","expected":"a free connection slot (retry later)","found":"full"}}"#;

/// The answer to a connection over the cap: written raw, since no HTTP machinery is spent on it.
fn refused() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{REFUSED_BODY}",
        REFUSED_BODY.len()
    )
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the open connections to finish their requests (idle ones are closed at once). The caller
/// bounds that wait.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let metrics = state.service.metrics.clone();
    let service = TowerToHyperService::new(app(state));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(limits.header_timeout_ms));
    tokio::pin!(shutdown);
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // out of descriptors or a connection reset before it was taken: keep serving
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connection_refused();
            tokio::spawn(async move {
                let refuse = async {
                    stream.write_all(refused().as_bytes()).await?;
                    stream.shutdown().await
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), refuse).await;
            });
            continue;
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let watched = graceful.watch(connection);
        let open = metrics.clone();
        open.connection_opened();
        tokio::spawn(async move {
            // a timed-out header or a client gone mid-request ends its own connection only
            let _ = watched.await;
            open.connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard one and returns the limit now in
/// force (`None` where it cannot be read): the usual soft limit of 1,024 is below
/// [`ConnectionLimits`]' default cap.
#[allow(unsafe_code)]
pub fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read or write only the struct they are given
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}
