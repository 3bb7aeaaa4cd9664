//! A listener's cap on open connections, and who gives way when it is reached.
//!
//! Every accepted connection holds a slot until it ends. When every slot is taken, the
//! connection that has waited longest without sending its first bytes (see
//! [`super::first_bytes`]) is closed to make room: a client that holds sockets without speaking
//! cannot keep the API server or the kubelet out. A connection gets [`GRACE`] to speak before it
//! can be closed so (time for a TLS handshake on a busy machine), so that a flood of new
//! connections cannot close every newcomer, the API server's included, before it has spoken.
//! When every connection is busy, or too young to close, the listener stops accepting until one
//! ends or comes of age (new clients wait in the kernel's backlog).

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::{Duration, Instant},
};

/// How long a connection may stay silent before it can be closed to make room.
pub const GRACE: Duration = Duration::from_secs(1);

/// The slots of one listener; clones share them.
#[derive(Clone, Debug)]
pub struct ConnectionSlots {
    permits: Arc<Semaphore>,
    /// Connections that have not sent their first bytes yet, oldest first (weak: a connection
    /// that ended is skipped).
    quiet: Arc<Mutex<VecDeque<Weak<Quiet>>>>,
    max: usize,
}

/// The state of one connection that has not spoken yet.
#[derive(Debug)]
struct Quiet {
    started: AtomicBool,
    evict: Notify,
    since: Instant,
}

/// What [`ConnectionSlots::evict_oldest_quiet`] did.
enum Evicted {
    /// The oldest quiet connection was told to close.
    Done,
    /// The oldest quiet connection may be closed after this.
    TooYoung(Duration),
    /// Every connection has spoken.
    NoneQuiet,
}

/// A connection's hold on a slot; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    quiet: Arc<Quiet>,
}

impl Slot {
    /// Marks the connection as having spoken: it is no longer closed to make room.
    pub fn started(&self) {
        self.quiet.started.store(true, Ordering::Release);
    }

    /// Completes when the connection is to be closed to make room for another.
    pub async fn evicted(&self) {
        self.quiet.evict.notified().await;
    }

    /// A handle that tells when the connection is to be closed, without holding the slot.
    pub fn eviction(&self) -> Eviction {
        Eviction(self.quiet.clone())
    }
}

/// Tells a connection when it is to be closed to make room (see [`Slot::eviction`]).
#[derive(Clone, Debug)]
pub struct Eviction(Arc<Quiet>);

impl Eviction {
    /// Completes when the connection is to be closed to make room for another.
    pub async fn evicted(&self) {
        self.0.evict.notified().await;
    }
}

impl ConnectionSlots {
    /// `max` slots (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            quiet: Arc::default(),
            max,
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Waits for a free slot, closing the oldest quiet connection (silent for at least
    /// [`GRACE`]) when there is none.
    pub async fn acquire(&self) -> Slot {
        let permit = loop {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                break permit;
            }
            let wait = match self.evict_oldest_quiet() {
                Evicted::Done => {
                    tracing::debug!(
                        max = self.max,
                        "connection cap reached: closed the oldest silent connection"
                    );
                    None
                }
                Evicted::TooYoung(left) => Some(left),
                Evicted::NoneQuiet => {
                    tracing::warn!(
                        max = self.max,
                        "connection cap reached: waiting for a connection to end"
                    );
                    None
                }
            };
            let acquire = self.permits.clone().acquire_owned();
            let until = Instant::now() + wait.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                permit = acquire => match permit {
                    Ok(permit) => break permit,
                    Err(_) => unreachable!("the connection semaphore is never closed"),
                },
                () = tokio::time::sleep_until(until), if wait.is_some() => {}
            }
        };
        let quiet = Arc::new(Quiet {
            started: AtomicBool::new(false),
            evict: Notify::new(),
            since: Instant::now(),
        });
        let mut list = self.lock();
        if list.len() >= 2 * self.max {
            list.retain(|q| q.upgrade().is_some_and(|q| !q.started.load(Ordering::Acquire)));
        }
        list.push_back(Arc::downgrade(&quiet));
        Slot {
            _permit: permit,
            quiet,
        }
    }

    /// Tells the oldest connection that has not spoken yet to close, if it has had its grace.
    fn evict_oldest_quiet(&self) -> Evicted {
        let mut list = self.lock();
        while let Some(weak) = list.pop_front() {
            if let Some(quiet) = weak.upgrade()
                && !quiet.started.load(Ordering::Acquire)
            {
                let age = quiet.since.elapsed();
                if age < GRACE {
                    list.push_front(weak);
                    return Evicted::TooYoung(GRACE - age);
                }
                quiet.evict.notify_one();
                return Evicted::Done;
            }
        }
        Evicted::NoneQuiet
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Weak<Quiet>>> {
        self.quiet.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_listener_closes_the_oldest_quiet_connection_first() {
        let slots = ConnectionSlots::new(2);
        let oldest = slots.acquire().await;
        let busy = slots.acquire().await;
        busy.started();
        assert_eq!(slots.open(), 2);
        // The third connection evicts the oldest quiet one, and gets its slot once it is gone.
        let third = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        // Not before the oldest has had its grace.
        assert!(
            tokio::time::timeout(GRACE / 2, oldest.evicted()).await.is_err(),
            "evicted before its grace"
        );
        tokio::time::timeout(Duration::from_secs(5), oldest.evicted())
            .await
            .expect("the oldest quiet connection is told to close");
        drop(oldest);
        let third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(slots.open(), 2);
        // Now the only quiet connection is the third; the busy one is never evicted.
        let fourth = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        tokio::time::timeout(Duration::from_secs(5), third.evicted())
            .await
            .unwrap();
        third.started();
        drop(third);
        let fourth = tokio::time::timeout(Duration::from_secs(5), fourth)
            .await
            .unwrap()
            .unwrap();
        fourth.started();
        // Every connection busy: the next one waits until one ends.
        let fifth = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!fifth.is_finished());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), busy.evicted())
                .await
                .is_err()
        );
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), fifth)
            .await
            .unwrap()
            .unwrap();
    }
}
