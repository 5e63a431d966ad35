//! This process's CPU time, memory, file descriptors and start time, read from Linux's
//! `/proc` (the figures of the standard `process_*` metrics).
//!
//! A few dozen lines instead of a crate: the maintained `/proc` crates parse every file
//! of `/proc` into large structs, for five numbers. Parsing is a pure function over the
//! files' text ([`parse_stat`], [`parse_boot_time`], [`parse_max_open_files`]), tested
//! with fixed text; [`sample`] does the reading. On other systems [`sample`] is `None`
//! and the metrics are absent.

use std::time::Duration;

/// One reading of this process's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User plus system CPU time used so far.
    pub cpu: Duration,
    /// Resident set size in bytes.
    pub resident_bytes: u64,
    /// Virtual memory size in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors (infinite when unlimited).
    pub max_fds: f64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// The fields of `/proc/self/stat` this module uses, in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// User-mode CPU time, in clock ticks.
    pub utime_ticks: u64,
    /// Kernel-mode CPU time, in clock ticks.
    pub stime_ticks: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    /// Virtual memory size, in bytes.
    pub vsize_bytes: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Reads `/proc/self/stat`'s line. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted after its *last* `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field n is at index n - 3 (proc(5)).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of "Max open files" from `/proc/self/limits` (infinite when
/// unlimited).
pub fn parse_max_open_files(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files            1024                 524288               files"
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(f64::INFINITY),
        soft => soft.parse::<u64>().ok().map(|v| v as f64),
    }
}

/// Reads this process's figures now; `None` where `/proc` is not Linux's.
pub fn sample() -> Option<ProcSample> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let max_fds = parse_max_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    // SAFETY: sysconf only reads a configuration value.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    let page = u64::try_from(page).ok().filter(|p| *p > 0)?;
    let cpu_ticks = stat.utime_ticks + stat.stime_ticks;
    Some(ProcSample {
        cpu: Duration::from_secs_f64(cpu_ticks as f64 / ticks as f64),
        resident_bytes: stat.rss_pages * page,
        virtual_bytes: stat.vsize_bytes,
        // read_dir's own descriptor is counted too; it is closed again at once.
        open_fds: open_fds.saturating_sub(1),
        max_fds,
        start_time_seconds: boot as f64 + stat.start_ticks as f64 / ticks as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line, with a command name holding a space and a parenthesis.
    const STAT: &str = "4242 (tokio rt) x) S 1 4242 4242 0 -1 4194560 2712 0 0 0 \
        150 25 0 0 20 0 9 0 123456 987654321 3210 18446744073709551615 1 1 0 0 0 0 0 \
        4096 17987 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                utime_ticks: 150,
                stime_ticks: 25,
                start_ticks: 123456,
                vsize_bytes: 987654321,
                rss_pages: 3210,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn boot_time_and_fd_limit() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1765000000\nprocesses 9\n"),
            Some(1765000000)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max cpu time              unlimited            unlimited            seconds   \n\
            Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024.0));
        assert_eq!(
            parse_max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            Some(f64::INFINITY)
        );
        assert_eq!(parse_max_open_files("Max cpu time  unlimited\n"), None);
    }

    #[test]
    fn this_process_reads_plausibly() {
        let Some(s) = sample() else {
            if cfg!(target_os = "linux") {
                panic!("/proc unreadable on Linux");
            }
            return;
        };
        assert!(s.resident_bytes > 0 && s.virtual_bytes >= s.resident_bytes);
        assert!(
            s.open_fds > 0,
            "the test harness holds descriptors: {}",
            s.open_fds
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
