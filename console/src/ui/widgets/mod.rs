//! Widgets shared by the views: the sparkline with gaps, the rate chart, the histogram, the
//! waterfall and the status line.

pub(crate) mod histogram;
pub(crate) mod rate_chart;
pub(crate) mod sparkline;
pub(crate) mod status;
pub(crate) mod waterfall;
