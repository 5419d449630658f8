//! Widgets shared by the views: the sparkline with gaps, the histogram, the waterfall and the
//! status line.

pub(crate) mod histogram;
pub(crate) mod sparkline;
pub(crate) mod status;
pub(crate) mod waterfall;
