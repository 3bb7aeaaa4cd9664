//! A shutdown signal shared by every server and background task of a process.

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable shutdown signal: triggered once (by SIGTERM/SIGINT or by [`Shutdown::trigger`]),
/// awaited by any number of servers and tasks.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired yet.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Fires the signal; every waiter wakes up. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Waits until the signal fires (returns at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = rx.wait_for(|fired| *fired).await;
    }

    /// Fires the signal on SIGTERM or SIGINT (Ctrl-C). Spawns a task; call once per process.
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::info!(signal, "shutdown requested; finishing in-flight requests");
            this.trigger();
        });
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let waiter = shutdown.clone();
        assert!(!waiter.is_triggered());
        let task = tokio::spawn(async move { waiter.wait().await });
        shutdown.trigger();
        task.await.unwrap();
        assert!(shutdown.is_triggered());
        // Waiting after the fact returns at once.
        shutdown.wait().await;
    }
}
