//! Time formatting on the client clock (UTC, so snapshots do not depend on the machine).

use chrono::{DateTime, Utc};

/// `HH:MM:SS` of an epoch-millisecond time.
pub(crate) fn hms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into())
}

/// `HH:MM:SS.mmm` of an RFC 3339 time, or the text itself when unreadable.
pub(crate) fn clock_of(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&Utc).format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|_| rfc3339.chars().take(12).collect())
}

/// `3s`, `2m05s`, `1h02m`.
pub(crate) fn age(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A byte count with a binary unit.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A duration in ms, short.
pub(crate) fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}ms")
    } else if v >= 1.0 {
        format!("{v:.1}ms")
    } else {
        format!("{:.0}µs", v * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(hms(1_749_580_079_122), "18:27:59");
        assert_eq!(clock_of("2025-06-10T20:27:59.5+02:00"), "18:27:59.500");
        assert_eq!(age(65_000), "1m05s");
        assert_eq!(age(3_725_000), "1h02m");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(ms(0.25), "250µs");
        assert_eq!(ms(12.34), "12.3ms");
    }
}
