//! (placeholder until the target module lands)
/// A cluster the agent applies to.
pub trait Target: Send + Sync + 'static {}
