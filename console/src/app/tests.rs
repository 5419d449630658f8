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
        app.update(Action::Net(e));
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
    assert_eq!(app.view, View::Pipeline);
    press(&mut app, "tab");
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
        app.update(Action::Net(msg(
            i,
            ServerMessage::Event(Box::new(fixtures::event(i, "log", "late"))),
        )));
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
    app.update(Action::Net(msg(200, ServerMessage::Result { id, data })));
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
    app.update(Action::Net(msg(300, ServerMessage::Result { id, data })));
    let rows = rows::events(app.shown(), &app.filter);
    assert_eq!(rows[0].item().unwrap().id, "old-1");
    assert_eq!(
        app.pos[View::Events.index()].selected,
        1,
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
    assert!(matches!(&c[..], [Command::Copy(raw)] if raw.contains("\"status\":\"ok\"")));
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
fn pipeline_order_asks_the_store_for_the_slowest() {
    let mut app = demo_app();
    let c = press(&mut app, "6 o");
    let (id, query) = query_of(&c);
    assert!(
        matches!(&query, Query::Traces(f) if f.order == TraceOrder::Slowest),
        "{query:?}"
    );
    let data =
        json!([{"batch_id": "stored-1", "outcome": "accepted", "total_us": 90_000, "stages": []}]);
    app.update(Action::Net(msg(400, ServerMessage::Result { id, data })));
    let rows = rows::pipeline(app.shown(), app.slowest_first, &app.stored_traces);
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.item())
        .map(|t| t.batch_id.as_str())
        .collect();
    assert_eq!(
        ids,
        vec![
            "batch-002",
            "stored-1",
            "batch-003",
            "batch-001",
            "batch-000"
        ]
    );
    press(&mut app, "g enter");
    assert!(matches!(
        app.screen(),
        Some(Screen::Waterfall { trace: Some(_), .. })
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
