//! A process-wide budget for admission request bodies being buffered.
//!
//! Each request's body is capped ([`RequestLimits::max_body_bytes`](super::server::RequestLimits),
//! 3 MiB by default), but without a shared cap memory would grow with the number of connections:
//! 200 clients sending endless bodies at once took the process from 26 MiB to 590 MiB resident
//! before this budget existed (tests/fault_injection.rs), and 1,000 clients each holding a body
//! of 65,000 bytes took it from 11 to 117 MiB while only bytes past 64 KiB were counted. Every
//! byte is now charged, to one of two pools, as it arrives, and given back when the body is
//! dropped:
//!
//! - the first [`FREE_BYTES`] of each body to the *small* pool (8 MiB by default: an
//!   AdmissionReview for a pod is typically a few KiB, so ordinary admissions only ever draw on
//!   this pool, and large bodies cannot crowd them out);
//! - the rest to the *large* pool (16 MiB by default).
//!
//! A body that cannot be charged fails at once with [`BudgetExhausted`] (answered 503 with
//! `Connection: close`) instead of waiting, so that bodies stuck half-way cannot deadlock the
//! budget. The bytes buffered across all connections never exceed the two pools together,
//! whatever each connection sends.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of every body charged to the small pool (the rest goes to the large pool).
pub const FREE_BYTES: usize = 64 * 1024;

/// The shared budget; clones share it.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    small: Pool,
    large: Pool,
}

#[derive(Clone, Debug)]
struct Pool {
    permits: Arc<Semaphore>,
    total: usize,
}

impl Pool {
    fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        Self {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }
}

/// The budget was spent when a body needed more of it.
#[derive(Debug, thiserror::Error)]
#[error(
    "too many {what} admission requests are being read at once (the {total_kib} KiB budget for \
     {part} is spent); retry"
)]
pub struct BudgetExhausted {
    what: &'static str,
    part: &'static str,
    total_kib: usize,
}

impl BodyBudget {
    /// A budget of `small` bytes for the first [`FREE_BYTES`] of every body and `large` bytes for
    /// the rest (at least one maximal body, or large bodies could never pass).
    pub fn new(small: usize, large: usize) -> Self {
        Self {
            small: Pool::new(small),
            large: Pool::new(large),
        }
    }

    /// Bytes not charged to any body right now: (small pool, large pool).
    pub fn available(&self) -> (usize, usize) {
        (
            self.small.permits.available_permits(),
            self.large.permits.available_permits(),
        )
    }

    /// `body`, charging its bytes to the budget while it lives.
    pub fn wrap(&self, body: Body) -> Body {
        let mut charge = Charge {
            budget: self.clone(),
            seen: 0,
            small: None,
            large: None,
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
    small: Option<OwnedSemaphorePermit>,
    large: Option<OwnedSemaphorePermit>,
}

impl Charge {
    fn add(&mut self, bytes: usize) -> Result<(), BudgetExhausted> {
        let before = self.seen;
        self.seen = self.seen.saturating_add(bytes);
        let small = self.seen.min(FREE_BYTES) - before.min(FREE_BYTES);
        let large = self.seen.saturating_sub(FREE_BYTES) - before.saturating_sub(FREE_BYTES);
        charge(
            &self.budget.small,
            &mut self.small,
            small,
            "",
            "the first 64 KiB of every body",
        )?;
        charge(
            &self.budget.large,
            &mut self.large,
            large,
            "large",
            "request bodies over 64 KiB",
        )
    }
}

fn charge(
    pool: &Pool,
    held: &mut Option<OwnedSemaphorePermit>,
    bytes: usize,
    what: &'static str,
    part: &'static str,
) -> Result<(), BudgetExhausted> {
    if bytes == 0 {
        return Ok(());
    }
    let exhausted = || BudgetExhausted {
        what: if what.is_empty() { "concurrent" } else { what },
        part,
        total_kib: pool.total / 1024,
    };
    let bytes = u32::try_from(bytes).map_err(|_| exhausted())?;
    let permit = pool
        .permits
        .clone()
        .try_acquire_many_owned(bytes)
        .map_err(|_| exhausted())?;
    match held {
        Some(held) => held.merge(permit),
        None => *held = Some(permit),
    }
    Ok(())
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
    async fn every_byte_is_charged_to_its_pool_until_the_body_is_dropped() {
        const MIB: usize = 1024 * 1024;
        let budget = BodyBudget::new(MIB, MIB);
        assert_eq!(read(&budget, vec![FREE_BYTES]).await.unwrap().len(), FREE_BYTES);
        assert_eq!(budget.available(), (MIB, MIB));
        // A body held open past the first 64 KiB holds its charge in both pools.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let held = budget.wrap(Body::from_stream(tokio_stream(rx)));
        let mut frames = held.into_data_stream();
        tx.send(Ok(Bytes::from(vec![b' '; FREE_BYTES + 1000])))
            .await
            .unwrap();
        frames.next().await.unwrap().unwrap();
        assert_eq!(budget.available(), (MIB - FREE_BYTES, MIB - 1000));
        // Another large body does not fit in what is left: it fails at once.
        let error = read(&budget, vec![FREE_BYTES, MIB]).await.unwrap_err();
        assert!(is_exhausted(&error), "{error}");
        assert!(error.to_string().contains("1024 KiB budget"), "{error}");
        drop(frames);
        assert_eq!(budget.available(), (MIB, MIB));
        assert_eq!(
            read(&budget, vec![FREE_BYTES, MIB]).await.unwrap().len(),
            FREE_BYTES + MIB
        );
    }

    #[tokio::test]
    async fn many_bodies_just_under_64_kib_cannot_pass_the_small_pool() {
        // The hostile pattern of issue 15: every connection holds a body just under the 64 KiB
        // that used to be free. Held bodies are charged; past the pool, bodies fail at once.
        let budget = BodyBudget::new(1024 * 1024, 1024 * 1024);
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..40 {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
            let mut frames = budget
                .wrap(Body::from_stream(tokio_stream(rx)))
                .into_data_stream();
            tx.send(Ok(Bytes::from(vec![b' '; 65_000]))).await.unwrap();
            match frames.next().await.unwrap() {
                Ok(_) => held.push((tx, frames)),
                Err(error) => {
                    assert!(is_exhausted(&error), "{error}");
                    assert!(error.to_string().contains("first 64 KiB"), "{error}");
                    refused += 1;
                }
            }
        }
        // 16 x 65,000 bytes fit in 1 MiB, the other 24 are refused.
        assert_eq!((held.len(), refused), (16, 24));
        let (small, large) = budget.available();
        assert!(small < 65_000 && large == 1024 * 1024, "{small} {large}");
        drop(held);
        assert_eq!(budget.available(), (1024 * 1024, 1024 * 1024));
    }

    fn tokio_stream<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send + 'static {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
