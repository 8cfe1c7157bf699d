//! `cairn serve`: the IPFS HTTP gateway (`docs/gateway.md`) over the embedded repo, with no
//! daemon: what the repo holds, nothing else.

use anyhow::{Context, Result};
use cairn_repo::Repo;
use cairn_storage_node::api::gateway_url;
use cairn_storage_node::gateway::{self, RepoSource};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// How long requests in progress may take to finish after Ctrl-C or SIGTERM (a client
/// streaming a large file would otherwise hold the exit up).
const DRAIN: Duration = Duration::from_secs(5);

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Serves `repo` on `listen` until Ctrl-C or SIGTERM. Once listening it prints one line on
/// stdout, `gateway listening on http://ADDR` (with `json`: `{"gateway": "http://ADDR"}`), the
/// bound address, so that port 0 can be used.
pub(crate) fn serve(repo: Repo, listen: &str, json: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let r = rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the gateway to {listen}"))?;
        let url = gateway_url(l.local_addr()?);
        {
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", json!({ "gateway": url }))?;
            } else {
                writeln!(out, "gateway listening on {url}")?;
            }
            out.flush()?;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let src = Arc::new(RepoSource::new(Arc::new(repo)));
        let server = gateway::serve_until(l, src, async move {
            let _ = stopped.await;
        });
        tokio::pin!(server);
        tokio::select! {
            r = &mut server => return r.with_context(|| format!("serving on {url}")),
            _ = shutdown_signal() => {}
        }
        let _ = stop.send(());
        match tokio::time::timeout(DRAIN, server).await {
            Ok(r) => r.with_context(|| format!("serving on {url}")),
            Err(_) => {
                eprintln!("requests still running after {DRAIN:?}; cutting them");
                Ok(())
            }
        }
    });
    // repo reads still running on the blocking pool are not waited for
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}
