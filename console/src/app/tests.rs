//! Key sequences driven through the app, as a user would type them.

use baddybugs_common::protocol::{ClientMessage, ServerMessage};
use baddybugs_common::query::{Query, TraceOrder};
use serde_json::json;

use super::view::{visible_spans, Screen, View};
use super::*;
use crate::keymap::key_event;
use crate::state::fixtures::{self, demo_feed, msg, T0};

pub(crate) fn demo_app() -> App {
    let mut app = App::new(Settings::default(), KeyMap::default(), T0);
    for e in demo_feed() {
        app.update(Action::NetFrom(0, e));
    }
    app.update(Action::Tick(T0 + 2_000));
    app
}

/// Presses each key (space-separated key names; `"type"` strings go char by char via `text`).
pub(crate) fn press(app: &mut App, keys: &str) -> Vec<Command> {
    let mut out = Vec::new();
    for k in keys.split_whitespace() {
        if let Some(action) = app.keymap.action(app.mode(), &key_event(k)) {
            out.extend(app.update(action));
        }
    }
    out
}

fn text(app: &mut App, s: &str) {
    for c in s.chars() {
        let k = if c == ' ' {
            "space".to_owned()
        } else {
            c.to_string()
        };
        if let Some(action) = app.keymap.action(app.mode(), &key_event(&k)) {
            app.update(action);
        }
    }
}

fn query_of(commands: &[Command]) -> (String, Query) {
    commands
        .iter()
        .find_map(|c| match c {
            Command::Send(message) => match message.as_ref() {
                ClientMessage::Query { id, query } => Some((id.clone(), query.clone())),
                _ => None,
            },
            _ => None,
        })
        .expect("a query")
}

#[test]
fn switches_views_with_digits_and_tab() {
    let mut app = demo_app();
    assert_eq!(app.view, View::Overview);
    press(&mut app, "2");
    assert_eq!(app.view, View::Types);
    press(&mut app, "tab");
    assert_eq!(app.view, View::Events);
    press(&mut app, "shift-tab shift-tab");
    assert_eq!(app.view, View::Overview);
    press(&mut app, "shift-tab");
    assert_eq!(app.view, View::Drift);
    press(&mut app, "shift-tab");
    assert_eq!(app.view, View::Pipeline);
    press(&mut app, "tab tab");
    assert_eq!(app.view, View::Overview);
}

#[test]
fn filter_is_typed_applied_and_cancelled() {
    let mut app = demo_app();
    press(&mut app, "3 /");
    assert_eq!(app.mode(), crate::keymap::Mode::Filter);
    text(&mut app, "type:cache q");
    assert!(!app.quit, "q is text while filtering");
    press(&mut app, "backspace backspace enter");
    assert_eq!(app.filter.event_type.as_deref(), Some("cache"));
    let rows = rows::events(app.shown(), &app.filter);
    assert_eq!(rows.len(), 6);
    assert!(rows
        .iter()
        .filter_map(|r| r.item())
        .all(|e| e.event_type == "cache"));
    press(&mut app, "/");
    text(&mut app, "zzz");
    press(&mut app, "esc");
    assert_eq!(app.filter.describe(), "type:cache", "Esc cancels the edit");
    press(&mut app, "esc");
    assert!(app.filter.is_empty(), "Esc at the top clears the filter");
    assert!(!app.quit);
}

#[test]
fn drills_in_and_back_and_only_quits_from_the_top() {
    let mut app = demo_app();
    press(&mut app, "3 k k enter");
    match app.screen() {
        Some(Screen::Event { event, .. }) => assert_eq!(event.id, "evt-0021"),
        other => panic!("{other:?}"),
    }
    press(&mut app, "j j");
    assert!(matches!(
        app.screen(),
        Some(Screen::Event { scroll: 2, .. })
    ));
    press(&mut app, "esc esc esc");
    assert!(app.screen().is_none());
    assert!(!app.quit, "Esc never quits");
    press(&mut app, "enter q");
    assert!(
        app.screen().is_none() && !app.quit,
        "q inside a drill-down goes back"
    );
    let c = press(&mut app, "q");
    assert!(app.quit);
    assert_eq!(c, vec![Command::Quit]);
}

#[test]
fn following_stops_when_scrolling_up_and_resumes_with_g() {
    let mut app = demo_app();
    press(&mut app, "3");
    assert!(app.pos[View::Events.index()].follow);
    press(&mut app, "k");
    assert!(!app.pos[View::Events.index()].follow);
    press(&mut app, "G");
    assert!(app.pos[View::Events.index()].follow);
}

#[test]
fn types_enter_tails_that_type() {
    let mut app = demo_app();
    press(&mut app, "2 g");
    // Sorted by total, descending: query has the most.
    press(&mut app, "enter");
    assert_eq!(app.view, View::Events);
    assert_eq!(app.filter.event_type.as_deref(), Some("query"));
    press(&mut app, "2 s s s");
    assert_eq!(app.type_sort, view::TypeSort::P99);
    press(&mut app, "i g enter");
    assert_eq!(
        app.filter.event_type.as_deref(),
        Some("cache"),
        "ascending p99: no p99 first, by name"
    );
}

#[test]
fn freeze_keeps_the_view_while_the_feed_flows() {
    let mut app = demo_app();
    press(&mut app, "3 space");
    let before = rows::events(app.shown(), &app.filter).len();
    for i in 100..110 {
        app.update(Action::NetFrom(
            0,
            msg(
                i,
                ServerMessage::Event(Box::new(fixtures::event(i, "log", "late"))),
            ),
        ));
    }
    assert_eq!(rows::events(app.shown(), &app.filter).len(), before);
    assert_eq!(app.arrived_while_frozen(), Some(10));
    assert_eq!(app.live.events.pushed, 34);
    press(&mut app, "space");
    assert_eq!(rows::events(app.shown(), &app.filter).len(), before + 10);
    assert_eq!(app.arrived_while_frozen(), None);
}

#[test]
fn trace_is_fetched_from_the_store() {
    let mut app = demo_app();
    press(&mut app, "3 k enter");
    let c = press(&mut app, "t");
    let (id, query) = query_of(&c);
    assert_eq!(
        query,
        Query::Trace {
            trace_id: "trace-1".into()
        }
    );
    assert!(matches!(
        app.screen(),
        Some(Screen::Trace { loading: true, .. })
    ));
    let data = json!({"events": [{"id": "a", "type": "request", "name": "GET /", "timestamp": "2025-06-10T18:28:00Z"},
                                  {"id": "b", "type": "query", "name": "select", "timestamp": "2025-06-10T18:27:59Z"}],
                      "spans": []});
    app.update(Action::NetFrom(
        0,
        msg(200, ServerMessage::Result { id, data }),
    ));
    match app.screen() {
        Some(Screen::Trace {
            loading: false,
            events,
            waterfall,
            ..
        }) => {
            assert_eq!(
                events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
                vec!["b", "a"]
            );
            assert!(
                waterfall.is_some(),
                "the lifecycle of this trace from the tail"
            );
        }
        other => panic!("{other:?}"),
    }
    press(&mut app, "enter");
    assert!(matches!(app.screen(), Some(Screen::Event { event, .. }) if event.id == "b"));
}

#[test]
fn scrolling_past_the_live_tail_fetches_older_events() {
    let mut app = demo_app();
    let c = press(&mut app, "3 g k");
    let (id, query) = query_of(&c);
    let Query::Events(filter) = query else {
        panic!("{query:?}")
    };
    assert_eq!(filter.until_ms, Some(T0));
    assert!(press(&mut app, "k").is_empty(), "one request at a time");
    let mut old = serde_json::to_value(fixtures::event(900, "log", "old")).unwrap();
    old["id"] = json!("old-1");
    let data = json!({"events": [old], "next_cursor": "cur-2"});
    app.update(Action::NetFrom(
        0,
        msg(300, ServerMessage::Result { id, data }),
    ));
    let rows = rows::events(app.shown(), &app.filter);
    assert_eq!(rows[0].item().unwrap().id, "old-1");
    assert_eq!(
        app.selected_event().map(|e| e.id),
        Some("evt-0000".to_owned()),
        "the selection stays on its event"
    );
    let c = press(&mut app, "k k");
    assert!(
        matches!(&query_of(&c).1, Query::Events(f) if f.cursor.as_deref() == Some("cur-2")),
        "the next page continues from the store's cursor"
    );
}

#[test]
fn waterfall_spans_fold_and_move() {
    let mut app = demo_app();
    press(&mut app, "5 g enter");
    press(&mut app, "j j");
    let Some(Screen::Waterfall {
        waterfall,
        selected,
        ..
    }) = app.screen()
    else {
        panic!("no waterfall");
    };
    assert_eq!(*selected, 2);
    assert_eq!(waterfall.spans[2].label, "OrderController@show");
    press(&mut app, "enter");
    let Some(Screen::Waterfall {
        waterfall, folded, ..
    }) = app.screen()
    else {
        panic!()
    };
    assert_eq!(visible_spans(waterfall, folded).len(), 4);
    press(&mut app, "enter");
    let Some(Screen::Waterfall {
        waterfall, folded, ..
    }) = app.screen()
    else {
        panic!()
    };
    assert_eq!(visible_spans(waterfall, folded).len(), 8);
}

#[test]
fn malformed_reason_copy_and_save() {
    let mut app = demo_app();
    press(&mut app, "4 r");
    assert_eq!(app.reason, Some("wrong_type"));
    assert_eq!(
        rows::malformed(app.shown(), &app.filter, app.reason).len(),
        4
    );
    press(&mut app, "r");
    assert_eq!(app.reason, Some("missing_field"));
    press(&mut app, "r");
    assert_eq!(app.reason, None);
    let c = press(&mut app, "enter y");
    assert!(matches!(app.screen(), Some(Screen::Malformed { .. })));
    assert!(
        matches!(&c[..], [Command::Copy { text, what }] if text.contains("\"status\":\"ok\"") && what == "129 bytes")
    );
    let c = press(&mut app, "esc ctrl-s");
    match &c[..] {
        [Command::Save { path, contents }] => {
            assert!(
                path.ends_with("baddybugs-malformed-20250610-182801.jsonl"),
                "{path:?}"
            );
            assert_eq!(contents.lines().count(), 5);
        }
        other => panic!("{other:?}"),
    }
    app.update(Action::Notice("saved to x.jsonl".into()));
    assert_eq!(app.notice.as_ref().unwrap().0, "saved to x.jsonl");
    app.update(Action::Tick(T0 + 9_000));
    assert!(app.notice.is_none(), "notices fade");
}

#[test]
/// Issue 16, item 7: a partial batch (some events rejected, 202) is not "failed"; the order
/// opens on its first row.
fn pipeline_order_asks_the_store_for_the_slowest() {
    let mut app = demo_app();
    let c = press(&mut app, "6 o");
    let (id, query) = query_of(&c);
    assert!(
        matches!(&query, Query::Traces(f) if f.order == TraceOrder::Slowest),
        "{query:?}"
    );
    let data = json!([
        {"batch_id": "stored-1", "outcome": "accepted", "total_us": 90_000, "stages": []},
        {"batch_id": "stored-2", "outcome": "refused", "total_us": 1_000, "stages": []}
    ]);
    app.update(Action::NetFrom(
        0,
        msg(400, ServerMessage::Result { id, data }),
    ));
    let rows = rows::pipeline(
        app.shown(),
        &app.filter,
        app.slowest_first,
        &app.stored_traces,
    );
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.item())
        .map(|t| t.batch_id.as_str())
        .collect();
    assert_eq!(
        ids,
        vec![
            "stored-2",
            "stored-1",
            "batch-003",
            "batch-002",
            "batch-001",
            "batch-000"
        ]
    );
    let keys = rows::keys(&rows);
    assert_eq!(
        app.pos[View::Pipeline.index()].index_in(&keys),
        0,
        "opens on the first row"
    );
    press(&mut app, "enter");
    assert!(matches!(
        app.screen(),
        Some(Screen::Waterfall { trace: Some(t), .. }) if t.batch_id == "stored-2"
    ));
}

#[test]
fn help_reconnect_and_ctrl_c() {
    let mut app = demo_app();
    press(&mut app, "?");
    assert_eq!(app.mode(), crate::keymap::Mode::Help);
    press(&mut app, "j esc");
    assert!(!app.help);
    assert_eq!(press(&mut app, "R"), vec![Command::Reconnect]);
    press(&mut app, "3 enter /");
    assert_eq!(press(&mut app, "ctrl-c"), vec![Command::Quit]);
    assert!(app.quit);
}

#[test]
fn ticks_only_redraw_when_the_second_changes() {
    let mut app = demo_app();
    app.dirty = false;
    app.update(Action::Tick(T0 + 2_100));
    assert!(!app.dirty);
    app.update(Action::Tick(T0 + 3_000));
    assert!(app.dirty);
}

/// Events `seqs` arriving on the feed (the demo feed's last frame is 40).
pub(crate) fn arrive(app: &mut App, seqs: std::ops::Range<u64>) {
    for i in seqs {
        let e = fixtures::event(i, "trace_span", "late");
        app.update(Action::NetFrom(
            0,
            msg(i, ServerMessage::Event(Box::new(e))),
        ));
    }
}

fn selected_id(app: &App) -> String {
    app.selected_event().map(|e| e.id).unwrap_or_default()
}

fn new_below(app: &App) -> usize {
    app.pos[app.view.index()].new_below(&app.list_keys())
}

// Issue 16 ("Scrolling that holds still"): the selection is a row, not an index.
#[test]
fn first_k_from_the_bottom_selects_the_row_above() {
    // Live and frozen (Space) alike.
    for keys in ["3", "3 space"] {
        let mut app = demo_app();
        press(&mut app, keys);
        assert_eq!(selected_id(&app), "evt-0023");
        press(&mut app, "k");
        assert_eq!(selected_id(&app), "evt-0022");
        let pos = app.pos[View::Events.index()];
        let keys = app.list_keys();
        assert_eq!(pos.index_in(&keys), keys.len() - 2);
        let height = View::Events.list_rows(app.body);
        assert_eq!(
            pos.start_in(&keys, height),
            keys.len() - height,
            "the cursor moves up, the list stays where it was"
        );
    }
}

#[test]
fn the_selected_row_holds_still_while_rows_arrive() {
    let mut app = demo_app();
    press(&mut app, "3 k k");
    assert_eq!(selected_id(&app), "evt-0021");
    let keys = app.list_keys();
    let height = View::Events.list_rows(app.body);
    let top = app.pos[View::Events.index()].start_in(&keys, height);
    let top_key = keys[top];
    arrive(&mut app, 41..61);
    assert_eq!(selected_id(&app), "evt-0021", "new rows slide in below");
    let keys = app.list_keys();
    assert_eq!(
        keys[app.pos[View::Events.index()].start_in(&keys, height)],
        top_key,
        "the window holds still too"
    );
    press(&mut app, "g");
    assert_eq!(selected_id(&app), "evt-0000");
    arrive(&mut app, 61..63);
    assert_eq!(
        selected_id(&app),
        "evt-0000",
        "after g, the top row stays selected"
    );
    press(&mut app, "j");
    assert_eq!(selected_id(&app), "evt-0001");
}

#[test]
fn an_evicted_selection_moves_to_the_oldest_row_left() {
    let mut app = demo_app();
    press(&mut app, "5 g j");
    let first = |app: &App| {
        let rows = rows::lifecycles(app.shown(), &app.filter);
        let i = app.pos[View::Waterfalls.index()].index_in(&rows::keys(&rows));
        rows[i].item().map(|w| w.id.clone()).unwrap_or_default()
    };
    let before = first(&app);
    for i in 0..crate::state::LIFECYCLE_CAP as u64 - 4 {
        let w = fixtures::waterfall(100 + i);
        app.update(Action::NetFrom(
            0,
            msg(41 + i, ServerMessage::Lifecycle(Box::new(w))),
        ));
    }
    assert_eq!(first(&app), before, "still kept, still selected");
    for i in 0..2 {
        let w = fixtures::waterfall(900 + i);
        let seq = 41 + crate::state::LIFECYCLE_CAP as u64 + i;
        app.update(Action::NetFrom(
            0,
            msg(seq, ServerMessage::Lifecycle(Box::new(w))),
        ));
    }
    let rows = rows::lifecycles(app.shown(), &app.filter);
    assert_eq!(
        app.pos[View::Waterfalls.index()].index_in(&rows::keys(&rows)),
        0,
        "gone: the oldest row left is selected"
    );
    assert!(!app.pos[View::Waterfalls.index()].follow);
}

#[test]
fn new_rows_are_counted_below_and_g_follows_again() {
    let mut app = demo_app();
    press(&mut app, "3");
    arrive(&mut app, 41..44);
    assert_eq!(new_below(&app), 0, "following: nothing to announce");
    press(&mut app, "k");
    arrive(&mut app, 44..49);
    assert_eq!(new_below(&app), 5);
    press(&mut app, "j j");
    assert_eq!(new_below(&app), 4, "a row seen is no longer new below");
    press(&mut app, "G");
    assert!(app.pos[View::Events.index()].follow);
    assert_eq!(new_below(&app), 0);
    assert_eq!(selected_id(&app), "evt-0048");
    arrive(&mut app, 49..50);
    assert_eq!(selected_id(&app), "evt-0049", "following the newest again");
}

#[test]
fn pipeline_and_malformed_hold_their_row_too() {
    let mut app = demo_app();
    let mut seq = 40;
    for (view, key) in [(View::Malformed, "4"), (View::Pipeline, "6")] {
        press(&mut app, &format!("{key} k"));
        let keys = app.list_keys();
        let before = app.pos[view.index()].index_in(&keys);
        let anchor = keys[before];
        for i in 0..3 {
            let m = match view {
                View::Malformed => ServerMessage::Malformed(Box::new(fixtures::malformed(50 + i))),
                _ => ServerMessage::Pipeline(Box::new(fixtures::pipeline(50 + i))),
            };
            seq += 1;
            app.update(Action::NetFrom(0, msg(seq, m)));
        }
        let keys = app.list_keys();
        assert_eq!(keys[app.pos[view.index()].index_in(&keys)], anchor);
        assert_eq!(new_below(&app), 3);
    }
}

/// A stored quarantine row as the `malformed` query answers it.
fn stored_malformed(i: u64, offset_ms: i64) -> serde_json::Value {
    let mut m = serde_json::to_value(fixtures::malformed(i)).unwrap();
    m["received_at"] = json!(fixtures::at(offset_ms));
    m["id"] = json!(format!("q-{i}"));
    m["truncated"] = json!(false);
    m
}

/// Issue 16, item 3: `k` at the top of Malformed pages back through the stored quarantine,
/// the filter's reason applied by the server; rows the tail holds are not shown twice.
#[test]
fn scrolling_past_the_malformed_tail_pages_the_stored_quarantine() {
    let mut app = demo_app();
    app.set_filter("reason:WRONG_TYPE");
    let c = press(&mut app, "4 g k");
    let (id, query) = query_of(&c);
    let Query::Malformed(filter) = query else {
        panic!("{query:?}")
    };
    assert_eq!(filter.reason.as_deref(), Some("wrong_type"));
    assert_eq!(
        filter.until_ms,
        Some(T0 + 1),
        "the oldest held row's millisecond included"
    );
    assert!(press(&mut app, "k").is_empty(), "one request at a time");
    let before = rows::malformed(app.shown(), &app.filter, app.reason).len();
    // The tail's oldest row (malformed 0, at T0) again, and two older ones.
    let data = json!([
        stored_malformed(0, 0),
        stored_malformed(90, -5_000),
        stored_malformed(91, -9_000)
    ]);
    app.update(Action::NetFrom(
        0,
        msg(300, ServerMessage::Result { id, data }),
    ));
    let rows = rows::malformed(app.shown(), &app.filter, app.reason);
    assert_eq!(rows.len(), before + 2, "no row twice");
    assert_eq!(rows[0].item().unwrap().batch_id, "batch-91", "oldest first");
    assert!(
        app.live.older_malformed.exhausted,
        "a short page is the store's last"
    );
    let c = press(&mut app, "g k");
    assert!(
        matches!(&query_of(&c).1, Query::Malformed(f) if f.until_ms == Some(T0 - 9_000 + 1)),
        "the next page ends at this page's oldest row"
    );
}

/// Issue 16, item 3: a filter that matches nothing says so, with the counts, instead of
/// "every event was accepted".
#[test]
fn an_empty_malformed_filter_is_honest() {
    let mut app = demo_app();
    app.set_filter("reason:too_large");
    press(&mut app, "4");
    assert!(rows::malformed(app.shown(), &app.filter, app.reason).is_empty());
    let backend = {
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(200, 30)).unwrap();
        t.draw(|f| crate::ui::render(f, &app)).unwrap();
        t.backend().clone()
    };
    let screen = format!("{backend:?}");
    assert!(!screen.contains("every event was accepted"), "{screen}");
    assert!(
        screen.contains("no rejection matches `reason:too_large` among the 5 here"),
        "{screen}"
    );
}

/// Issue 16, item 2: a rejection cut on the feed asks the store for its bytes, and says so
/// when the store holds no more than the feed did.
#[test]
fn a_cut_rejection_asks_the_store_and_tells_what_it_got() {
    let mut app = demo_app();
    let mut m = fixtures::malformed(9);
    let full = m.raw.clone();
    m.raw = full[..20].to_owned();
    app.update(Action::NetFrom(
        0,
        msg(300, ServerMessage::Malformed(Box::new(m))),
    ));
    let c = press(&mut app, "4 G enter");
    let (id, query) = query_of(&c);
    let Query::Malformed(filter) = query else {
        panic!("{query:?}")
    };
    assert_eq!(filter.application.as_deref(), Some("shop"));
    assert_eq!(
        filter.until_ms,
        filter.since_ms.map(|t| t + 1),
        "its millisecond"
    );
    let mut row = stored_malformed(9, 9 * 500);
    row["raw"] = json!(full[..20]);
    row["truncated"] = json!(true);
    app.update(Action::NetFrom(
        0,
        msg(
            301,
            ServerMessage::Result {
                id,
                data: json!([row]),
            },
        ),
    ));
    let notice = app.notice.as_ref().map(|n| n.0.clone()).unwrap_or_default();
    assert_eq!(
        notice,
        format!("the store keeps the first 20 of {} bytes", full.len())
    );
}
