//! The count of queries being answered, so a shutdown can wait for them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Counts queries being answered, so a shutdown can wait for them (and a
/// listener thread for its own slow queries).
#[derive(Debug, Default)]
pub(crate) struct ActiveQueries {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held while one query is answered.
pub(super) struct ActiveQuery(Arc<ActiveQueries>);

impl ActiveQueries {
    /// Counts one more query (a listener thread's own slow queries).
    #[cfg(target_os = "linux")]
    pub(super) fn enter(self: &Arc<Self>) -> ActiveQuery {
        self.count.fetch_add(1, Ordering::AcqRel);
        ActiveQuery(Arc::clone(self))
    }

    /// Counts one more query, unless `limit` are being answered already.
    pub(super) fn try_enter(self: &Arc<Self>, limit: usize) -> Option<ActiveQuery> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < limit).then_some(count + 1)
            })
            .ok()?;
        Some(ActiveQuery(Arc::clone(self)))
    }

    /// Queries being answered now.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub(super) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ActiveQuery {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
