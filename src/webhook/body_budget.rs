//! A process-wide budget for admission request bodies being buffered.
//!
//! Each request's body is capped ([`RequestLimits::max_body_bytes`](super::server::RequestLimits),
//! 4 MiB by default), but without a shared cap memory would grow with the number of connections:
//! 200 clients sending endless bodies at once took the process from 26 MiB to 590 MiB resident
//! before this budget existed (tests/fault_injection.rs). The first
//! [`FREE_BYTES`] of every body are free (an AdmissionReview for a pod is typically a few KiB, so
//! ordinary admissions never touch the budget, even under attack); bytes beyond that are charged
//! to a shared semaphore as they arrive and given back when the body is dropped. A body that
//! cannot be charged fails at once with [`BudgetExhausted`] (answered 503 with `Connection: close`)
//! instead of waiting, so that bodies stuck half-way cannot deadlock the budget.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of every body that are not charged to the budget.
pub const FREE_BYTES: usize = 64 * 1024;

/// The shared budget; clones share it.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total: usize,
}

/// The budget was spent when a body needed more of it.
#[derive(Debug, thiserror::Error)]
#[error(
    "too many large admission requests are being read at once (the {total_mib} MiB budget for \
     request bodies over {free_kib} KiB is spent); retry"
)]
pub struct BudgetExhausted {
    total_mib: usize,
    free_kib: usize,
}

impl BodyBudget {
    /// A budget of `total` bytes (at least one maximal body, or large bodies could never pass).
    pub fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        Self {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes not charged to any body right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// `body`, charging its bytes beyond [`FREE_BYTES`] to the budget while it lives.
    pub fn wrap(&self, body: Body) -> Body {
        let mut charge = Charge {
            budget: self.clone(),
            seen: 0,
            permit: None,
        };
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let chunk: Bytes = chunk?;
            charge.add(chunk.len()).map_err(axum::Error::new)?;
            Ok::<_, axum::Error>(chunk)
        }))
    }
}

/// What one body holds of the budget.
struct Charge {
    budget: BodyBudget,
    seen: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Charge {
    fn add(&mut self, bytes: usize) -> Result<(), BudgetExhausted> {
        let before = self.seen.saturating_sub(FREE_BYTES);
        self.seen = self.seen.saturating_add(bytes);
        let more = self.seen.saturating_sub(FREE_BYTES) - before;
        if more == 0 {
            return Ok(());
        }
        let exhausted = || BudgetExhausted {
            total_mib: self.budget.total / (1024 * 1024),
            free_kib: FREE_BYTES / 1024,
        };
        let more = u32::try_from(more).map_err(|_| exhausted())?;
        let permit = self
            .budget
            .permits
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| exhausted())?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }
}

/// Whether `error` (or a cause of it) is [`BudgetExhausted`].
pub fn is_exhausted(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.is::<BudgetExhausted>() {
            return true;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(budget: &BodyBudget, chunks: Vec<usize>) -> Result<Bytes, axum::Error> {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|n| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; n]))),
        );
        axum::body::to_bytes(budget.wrap(Body::from_stream(stream)), usize::MAX).await
    }

    #[tokio::test]
    async fn small_bodies_are_free_and_large_ones_are_charged_until_dropped() {
        let budget = BodyBudget::new(1024 * 1024);
        assert_eq!(read(&budget, vec![FREE_BYTES]).await.unwrap().len(), FREE_BYTES);
        assert_eq!(budget.available(), 1024 * 1024);
        // A body held open past the free bytes holds its charge.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let held = budget.wrap(Body::from_stream(tokio_stream(rx)));
        let mut frames = held.into_data_stream();
        tx.send(Ok(Bytes::from(vec![b' '; FREE_BYTES + 1000])))
            .await
            .unwrap();
        frames.next().await.unwrap().unwrap();
        assert_eq!(budget.available(), 1024 * 1024 - 1000);
        // Another large body does not fit in what is left: it fails at once.
        let error = read(&budget, vec![FREE_BYTES, 1024 * 1024]).await.unwrap_err();
        assert!(is_exhausted(&error), "{error}");
        assert!(error.to_string().contains("1 MiB budget"), "{error}");
        drop(frames);
        assert_eq!(budget.available(), 1024 * 1024);
        assert_eq!(
            read(&budget, vec![FREE_BYTES, 1024 * 1024]).await.unwrap().len(),
            FREE_BYTES + 1024 * 1024
        );
    }

    fn tokio_stream<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send + 'static {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
