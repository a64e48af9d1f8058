//! CPU-heavy steps of a request (parsing a large body, converting tensors, encoding large
//! outputs, decoding images, scanning the repository) run on the blocking pool, never on
//! the async executor; small ones run inline, where a hand-off would cost more than the work.

use crate::error::ApiError;

/// Work on more bytes (or elements) than this leaves the executor.
pub const INLINE_LIMIT: usize = 256 << 10;

/// Runs `work` inline when `size` is small, otherwise on the blocking pool, within the
/// caller's span (its logs keep the request id).
pub async fn cpu_heavy<T, F>(size: usize, what: &'static str, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    if size <= INLINE_LIMIT {
        return work();
    }
    off_executor(what, work).await?
}

/// Runs `work` on the blocking pool within the caller's span.
pub async fn off_executor<T, F>(what: &'static str, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| ApiError::internal(format!("{what} failed: {e}")))
}
