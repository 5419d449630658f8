//! Per-connection sequence tracking: the server numbers every frame of a connection from 1, so a
//! jump means frames were lost (the server dropped them for a slow reader, or a proxy did).

/// What a sequence number says about the frames before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// The next one, as expected.
    InOrder,
    /// `missed` frames never arrived.
    Gap { missed: u64 },
    /// Lower than or equal to one already seen (a replay or a new connection without reset).
    Backwards,
}

/// Tracks the sequence numbers of one connection (a new connection gets a new tracker: the
/// server restarts numbering at 1).
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqTracker {
    last: Option<u64>,
}

impl SeqTracker {
    pub(crate) fn observe(&mut self, seq: u64) -> SeqCheck {
        let expected = self.last.map_or(1, |l| l + 1);
        let check = if seq == expected {
            SeqCheck::InOrder
        } else if seq > expected {
            SeqCheck::Gap {
                missed: seq - expected,
            }
        } else {
            SeqCheck::Backwards
        };
        if check != SeqCheck::Backwards {
            self.last = Some(seq);
        }
        check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_gap_backwards_reset() {
        let mut s = SeqTracker::default();
        assert_eq!(s.observe(1), SeqCheck::InOrder);
        assert_eq!(s.observe(2), SeqCheck::InOrder);
        assert_eq!(s.observe(6), SeqCheck::Gap { missed: 3 });
        assert_eq!(s.observe(7), SeqCheck::InOrder);
        assert_eq!(s.observe(3), SeqCheck::Backwards);
        assert_eq!(s.observe(8), SeqCheck::InOrder);
        let mut fresh = SeqTracker::default();
        assert_eq!(fresh.observe(4), SeqCheck::Gap { missed: 3 });
    }
}
