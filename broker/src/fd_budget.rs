//! File-descriptor budget: how many client connections the process can hold without
//! running out of descriptors, so that a flood of connections (from one client or many)
//! cannot exhaust them and leave the accept loop failing with `EMFILE`.
//!
//! The limit is read from `/proc/self/limits` (Linux); elsewhere, or when it cannot be
//! read, the configured connection limit is used as it is.

/// The connection limit to use: `configured`, lowered to the soft open-file limit minus
/// `reserve` when that is smaller (never below 1). Returns the limit and the descriptor
/// limit it was derived from, if one was read.
pub(crate) fn connection_budget(configured: usize, reserve: usize) -> (usize, Option<u64>) {
    let Some(limit) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| soft_open_files(&text))
    else {
        return (configured, None);
    };
    (budget(configured, reserve, limit), Some(limit))
}

/// `configured`, capped by `limit - reserve`, at least 1.
fn budget(configured: usize, reserve: usize, limit: u64) -> usize {
    let available = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserve)
        .max(1);
    configured.min(available)
}

/// The soft "Max open files" value of a `/proc/<pid>/limits` text (`None` if unlimited
/// or absent).
fn soft_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_soft_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 1048576              files     \n";
        assert_eq!(soft_open_files(text), Some(1024));
        assert_eq!(
            soft_open_files("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(soft_open_files(""), None);
    }

    #[test]
    fn budget_keeps_the_reserve() {
        assert_eq!(budget(100_000, 64, 1024), 960);
        assert_eq!(budget(500, 64, 1024), 500);
        assert_eq!(budget(500, 2000, 1024), 1);
        assert!(connection_budget(10, 0).0 <= 10);
    }
}
