//! [`Action`]: everything that can happen to the console, the one input of `App::update`.
//!
//! Apart from `app` so that `keymap` (key → action) and `app` (action → state) each depend on
//! it and not on each other.

use crate::state::tail::NodeIx;
use crate::state::FeedEvent;

/// Everything that can happen to the console.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// The clock, epoch ms.
    Tick(i64),
    /// A network report, of node N of a fleet (always 0 when watching one server).
    NetFrom(NodeIx, FeedEvent),
    /// The terminal changed size.
    Resize,
    /// A message for the status line (e.g. where a file was saved).
    Notice(String),
    Quit,
    ForceQuit,
    Back,
    Enter,
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    NextView,
    PrevView,
    View(usize),
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    FilterClear,
    FilterSubmit,
    FilterCancel,
    Freeze,
    Help,
    Reconnect,
    SortNext,
    SortInvert,
    OpenTrace,
    CycleReason,
    Copy,
    Save,
    ToggleOrder,
}
