//! The readiness probe run by `azure-wi proxy --probe` (the sidecar's postStart hook).

use std::time::Duration;

/// How the probe polls `/readyz`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Probe {
    /// The readiness URL.
    pub url: String,
    /// How many requests at most.
    pub attempts: u32,
    /// The pause between two attempts.
    pub interval: Duration,
    /// The timeout of one request.
    pub timeout: Duration,
}

impl Probe {
    /// Upstream's schedule against the proxy on `port`: `http://127.0.0.1:<port>/readyz`, up to 7
    /// attempts 1 s apart, each with a 5 s timeout.
    pub fn localhost(port: u16) -> Self {
        Self {
            url: format!("http://127.0.0.1:{port}/readyz"),
            attempts: 7,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }

    /// Sets the pause between attempts.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Polls until `/readyz` answers 200; returns whether it did.
    pub async fn run(&self) -> bool {
        let client = match super::http_client(self.timeout) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the probe's HTTP client");
                return false;
            }
        };
        for attempt in 1..=self.attempts {
            match client.get(&self.url).send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(url = %self.url, attempt, "token proxy is ready");
                    return true;
                }
                Ok(response) => {
                    tracing::info!(url = %self.url, attempt, status = response.status().as_u16(), "not ready")
                }
                Err(error) => tracing::info!(url = %self.url, attempt, %error, "not ready"),
            }
            if attempt < self.attempts {
                tokio::time::sleep(self.interval).await;
            }
        }
        tracing::error!(url = %self.url, attempts = self.attempts, "token proxy did not become ready");
        false
    }
}
