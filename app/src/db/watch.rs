//! How long a request has been waiting on the database: from when it is handed a pooled
//! connection until it gives the last one back. The request pipeline answers 503 when one such
//! stretch exceeds `BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS` (a hung or overloaded database), instead
//! of waiting for the request timeout.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The database time of one request; see [`DbWatch::scope`].
#[derive(Default)]
pub struct DbWatch {
    held: Mutex<Held>,
    changed: Notify,
}

#[derive(Default)]
struct Held {
    count: usize,
    since: Option<Instant>,
}

tokio::task_local! {
    static WATCH: Arc<DbWatch>;
}

impl DbWatch {
    /// Runs `fut`; the connections it checks out count on this watch.
    pub async fn scope<F: Future>(self: &Arc<Self>, fut: F) -> F::Output {
        WATCH.scope(self.clone(), fut).await
    }

    /// Resolves once connections have been held for `limit` without a break.
    pub async fn overdue(&self, limit: Duration) {
        loop {
            // Registered before the state is read, so no change is missed.
            let changed = self.changed.notified();
            let since = self.lock().since;
            match since {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t + limit) => {
                            if self.lock().since == Some(t) {
                                return;
                            }
                        }
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One checked-out connection counted on the current request's watch (none outside a request).
pub(super) struct Lease(Option<Arc<DbWatch>>);

impl Lease {
    pub(super) fn take() -> Lease {
        let watch = WATCH.try_with(Arc::clone).ok();
        if let Some(w) = &watch {
            let mut h = w.lock();
            h.count += 1;
            if h.count == 1 {
                h.since = Some(Instant::now());
                drop(h);
                w.changed.notify_waiters();
            }
        }
        Lease(watch)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(w) = &self.0 {
            let mut h = w.lock();
            h.count = h.count.saturating_sub(1);
            if h.count == 0 {
                h.since = None;
                drop(h);
                w.changed.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overdue_counts_only_while_a_connection_is_held_without_a_break() {
        let w = Arc::new(DbWatch::default());
        let limit = Duration::from_millis(300);
        // Nothing held: never overdue.
        assert!(tokio::time::timeout(limit * 3, w.overdue(limit))
            .await
            .is_err());
        // Held for half the limit, given back, taken again: the clock starts again, so the
        // watch is overdue no sooner than a limit after the second checkout.
        let t0 = Instant::now();
        let work = w.scope(async {
            let first = Lease::take();
            tokio::time::sleep(limit / 2).await;
            drop(first);
            let second = Lease::take();
            tokio::time::sleep(limit * 10).await;
            drop(second);
        });
        tokio::select! {
            () = work => panic!("never overdue"),
            () = w.overdue(limit) => {}
        }
        assert!(t0.elapsed() >= limit + limit / 2, "{:?}", t0.elapsed());
        // The cancelled work gave its connection back.
        let held = w.lock();
        assert!(held.since.is_none() && held.count == 0);
    }
}
