//! [`StoreHandle`]: how async code uses a [`Store`] without blocking the runtime.
//!
//! Each call runs on tokio's blocking thread pool (`spawn_blocking`), because a SQLite
//! commit with `synchronous=FULL` waits for `fsync` and must not stall the reactor that
//! also serves HTTP and MQTT.

use std::sync::Arc;

use super::{Store, StoreError};

/// A cheaply clonable, async-friendly reference to the store.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
}

impl StoreHandle {
    /// Wraps a store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreHandle { store }
    }

    /// The store itself, for synchronous callers (tests, blocking threads).
    pub fn blocking(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs `f` against the store on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}
