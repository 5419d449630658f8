//! The descriptor limit: raised to the hard limit at start, and what it leaves for connections.

/// The `RLIMIT_NOFILE` values seen at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit the process was started with.
    pub soft_at_start: u64,
    /// The soft limit now (the hard limit, unless raising it failed).
    pub soft: u64,
    /// The hard limit (`u64::MAX` when unlimited).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (a process may always do that) and
/// returns both. A failure to raise leaves the soft limit as it was.
pub fn raise_nofile() -> NofileLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft_at_start = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let mut soft = soft_at_start;
    if soft < hard {
        // An unlimited hard limit is refused for the soft one on Linux (past `nr_open`):
        // ask for a large finite value then.
        let wanted = if hard == u64::MAX { 1 << 20 } else { hard };
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            soft = wanted;
        }
    }
    NofileLimit {
        soft_at_start,
        soft,
        hard,
    }
}

/// Regular connections allowed under `soft` descriptors: the configured maximum, or less, so
/// that the reserve and the other descriptors still fit. `None` when nothing is left.
pub fn connection_cap(
    soft: u64,
    max_connections: usize,
    operator_reserve: usize,
    reserved_descriptors: usize,
) -> Option<usize> {
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let fits = soft
        .checked_sub(reserved_descriptors)?
        .checked_sub(operator_reserve)?;
    (fits > 0).then(|| fits.min(max_connections))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fits_under_the_limit() {
        assert_eq!(connection_cap(1 << 20, 65_536, 32, 128), Some(65_536));
        assert_eq!(connection_cap(1024, 65_536, 32, 128), Some(864));
        assert_eq!(connection_cap(160, 65_536, 32, 128), None);
        assert_eq!(connection_cap(u64::MAX, 10, 32, 128), Some(10));
    }

    #[test]
    fn raising_never_lowers() {
        let limit = raise_nofile();
        assert!(limit.soft >= limit.soft_at_start);
        assert!(limit.soft <= limit.hard);
    }
}
