//! Snapshots of every view at 80×24 and 200×50, from fixtures and a fixed clock
//! (`ratatui::backend::TestBackend` + `insta`; accepted snapshots live in `src/snapshots/`).

use baddybugs_common::protocol::ServerMessage;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::json;

use crate::action::Action;
use crate::app::tests::{demo_app, press};
use crate::app::App;
use crate::state::fixtures::{hello, msg, T0};
use crate::state::FeedEvent;
use crate::ui;

const SIZES: [(u16, u16); 2] = [(80, 24), (200, 50)];

/// Draws `app` on a `w`×`h` test terminal, as `main` sizes it.
pub(crate) fn draw(app: &mut App, w: u16, h: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.body = ui::body_height(app, h);
    app.page = app.body.saturating_sub(4).max(1);
    app.width = w.saturating_sub(2) as usize;
    terminal.draw(|f| ui::render(f, app)).unwrap();
    terminal.backend().clone()
}

/// Snapshots `name` at both sizes, the app built fresh for each by `setup`.
fn snap(name: &str, setup: impl Fn(&mut App)) {
    for (w, h) in SIZES {
        let mut app = demo_app();
        setup(&mut app);
        let backend = draw(&mut app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), backend);
    }
}

#[test]
fn overview() {
    snap("overview", |_| {});
}

#[test]
fn types() {
    snap("types", |a| {
        press(a, "2");
    });
}

#[test]
fn events_tail() {
    snap("events", |a| {
        press(a, "3");
    });
}

#[test]
fn events_filtered_and_paused() {
    snap("events_filtered_paused", |a| {
        a.set_filter("type:cache env:production");
        press(a, "3 space");
        for i in 100..103 {
            a.update(Action::NetFrom(
                0,
                msg(i, ServerMessage::Pong { nonce: None }),
            ));
        }
    });
}

#[test]
fn filter_prompt() {
    snap("filter_prompt", |a| {
        press(a, "3 / t y p e");
    });
}

#[test]
fn event_detail() {
    snap("event_detail", |a| {
        press(a, "3 k enter");
    });
}

#[test]
fn trace() {
    snap("trace", |a| {
        press(a, "3 k enter");
        let c = press(a, "t");
        let Some(crate::app::Command::Send(message)) = c.into_iter().next() else {
            panic!("no query");
        };
        let baddybugs_common::protocol::ClientMessage::Query { id, .. } = *message else {
            panic!("no query");
        };
        let data = json!({"events": [
            {"id": "evt-0001", "type": "query", "name": "select orders", "timestamp": "2025-06-10T18:27:59.250Z", "environment": "production"},
            {"id": "evt-0003", "type": "request", "name": "GET /orders", "timestamp": "2025-06-10T18:27:59.750Z", "environment": "production", "duration_ms": 45.5, "status_code": 200}
        ], "spans": []});
        a.update(Action::NetFrom(
            0,
            msg(500, ServerMessage::Result { id, data }),
        ));
    });
}

#[test]
fn malformed() {
    snap("malformed", |a| {
        press(a, "4");
    });
}

#[test]
fn malformed_detail() {
    snap("malformed_detail", |a| {
        press(a, "4 g enter");
    });
}

#[test]
fn waterfalls() {
    snap("waterfalls", |a| {
        press(a, "5");
    });
}

#[test]
fn waterfall_detail() {
    snap("waterfall_detail", |a| {
        press(a, "5 g enter j j j");
    });
}

#[test]
fn waterfall_folded_ascii() {
    snap("waterfall_folded_ascii", |a| {
        a.settings.ascii = true;
        press(a, "5 g enter j j enter");
    });
}

#[test]
fn pipeline() {
    snap("pipeline", |a| {
        press(a, "6");
    });
}

#[test]
fn pipeline_waterfall() {
    snap("pipeline_waterfall", |a| {
        press(a, "6 g j j enter j j j j j");
    });
}

#[test]
fn help() {
    snap("help", |a| {
        press(a, "?");
    });
}

#[test]
fn disconnected() {
    snap("disconnected", |a| {
        press(a, "3");
        a.update(Action::Tick(T0 + 5_000));
        a.update(Action::NetFrom(
            0,
            FeedEvent::Disconnected {
                error: "the server closed the connection".into(),
                attempt: 2,
                retry_in_ms: 8_000,
            },
        ));
        a.update(Action::Tick(T0 + 12_000));
    });
}

#[test]
fn restarted() {
    snap("restarted", |a| {
        a.update(Action::NetFrom(
            0,
            FeedEvent::Disconnected {
                error: "connection lost".into(),
                attempt: 1,
                retry_in_ms: 300,
            },
        ));
        a.update(Action::Tick(T0 + 3_000));
        a.update(Action::NetFrom(0, FeedEvent::Connected));
        a.update(Action::NetFrom(0, msg(1, hello("inst-b"))));
        a.update(Action::Tick(T0 + 4_000));
    });
}

#[test]
fn overview_ascii_no_color() {
    snap("overview_ascii", |a| {
        a.settings.ascii = true;
        a.settings.color = false;
        press(a, "space");
    });
}

#[test]
fn too_small() {
    let mut app = demo_app();
    let backend = draw(&mut app, 50, 12);
    insta::assert_snapshot!("too_small_50x12", backend);
}

/// Issue 16: a list scrolled up while rows keep arriving holds still and says how many
/// arrived below it.
#[test]
fn events_scrolled_with_new_rows_below() {
    for (w, h) in [(80, 24), (200, 50)] {
        let mut app = demo_app();
        draw(&mut app, w, h);
        press(&mut app, "3 k k");
        crate::app::tests::arrive(&mut app, 41..48);
        let backend = draw(&mut app, w, h);
        insta::assert_snapshot!(format!("events_new_below_{w}x{h}"), backend);
    }
}

/// Issue 16, item 2: a long single-line body broken at its end. The feed carries its first
/// 16 KiB; opening it loads every byte from the store, wrapped, opened at the parse error.
#[test]
fn malformed_long_body() {
    snap("malformed_long_body", |a| {
        let mut raw = r#"{"events":[{"type":"log","name":"a\/b","payload":{"message":""#.to_owned();
        raw.push_str(&"0123456789".repeat(1_826));
        let mut m = crate::state::fixtures::malformed(7);
        m.reasons = vec![baddybugs_common::Problem::new(
            baddybugs_common::ReasonCode::InvalidJson,
            "",
            "JSON",
            format!("EOF while parsing a string at line 1 column {}", raw.len()),
        )];
        m.raw = raw[..16_384].to_owned();
        m.raw_size = raw.len() as u64;
        a.update(Action::NetFrom(
            0,
            msg(200, ServerMessage::Malformed(Box::new(m))),
        ));
        let c = press(a, "4 G enter");
        let Some(crate::app::Command::Send(message)) = c.into_iter().next() else {
            panic!("no query for the stored bytes");
        };
        let baddybugs_common::protocol::ClientMessage::Query { id, .. } = *message else {
            panic!("no query");
        };
        let data = json!([{"id": "q-7", "batch_id": "batch-7", "index": 7, "raw": raw,
            "raw_size": raw.len(), "truncated": false}]);
        a.update(Action::NetFrom(
            0,
            msg(201, ServerMessage::Result { id, data }),
        ));
    });
}

/// Issue 16, item 3: a filter that matches no rejection says so with the counts.
#[test]
fn malformed_empty_filter() {
    snap("malformed_empty_filter", |a| {
        a.set_filter("reason:too_large");
        press(a, "4");
    });
}

/// Issue 16, item 4: the application column, and `app:` narrowing the list to one application.
#[test]
fn events_of_one_app() {
    snap("events_app_filter", |a| {
        a.set_filter("app:blog");
        press(a, "3");
    });
}

/// Issue 16, item 9: a sampled tail says "1 in N" in its title; `name:` matches a part of
/// the name, `status:` a class of codes.
#[test]
fn events_sampled_and_filtered() {
    snap("events_sampled_filtered", |a| {
        for i in 41..44 {
            let mut e = crate::state::fixtures::event(i, "request", "GET /orders/7");
            e.status_code = Some(if i == 42 { 503 } else { 200 });
            e.sampled_one_in = Some(4);
            a.update(Action::NetFrom(
                0,
                msg(i, ServerMessage::Event(Box::new(e))),
            ));
        }
        a.set_filter("name:get status:2xx");
        press(a, "3");
    });
}

/// Issue 16, item 8: long type names whole in Events and Types, and the sorted Types header
/// never runs into its neighbour.
#[test]
fn long_type_names_and_sorted_header() {
    for (w, h) in SIZES {
        let mut app = demo_app();
        for i in 41..44 {
            let e = crate::state::fixtures::event(i, "security_threat", "sql injection");
            app.update(Action::NetFrom(
                0,
                msg(i, ServerMessage::Event(Box::new(e))),
            ));
        }
        press(&mut app, "3");
        let backend = draw(&mut app, w, h);
        insta::assert_snapshot!(format!("events_long_types_{w}x{h}"), backend);
        press(&mut app, "2 s");
        let backend = draw(&mut app, w, h);
        insta::assert_snapshot!(format!("types_sorted_by_rejected_{w}x{h}"), backend);
    }
}

/// Issue 16, item 7: "failed, then slowest first" opens on its first row; a partial batch is
/// not failed.
#[test]
fn pipeline_slowest_first() {
    snap("pipeline_slowest", |a| {
        press(a, "6 o");
    });
}

/// Issue 16, item 8: at 60 columns the path (where the event is wrong) keeps its room.
#[test]
fn malformed_narrow() {
    let mut app = demo_app();
    press(&mut app, "4");
    let backend = draw(&mut app, 60, 16);
    insta::assert_snapshot!("malformed_60x16", backend);
}

fn with_refusals(a: &mut App) {
    use crate::state::fixtures::refused;
    for (i, (status, reason)) in [
        (401, "unknown_key: unknown API key"),
        (
            413,
            "too_large: body over ingest.max_body_bytes (1048576 bytes)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let trace = refused(i as u64 + 1, status, reason);
        a.update(Action::NetFrom(
            0,
            msg(200 + i as u64, ServerMessage::Pipeline(Box::new(trace))),
        ));
    }
}

/// Issue 16, item 5: a request refused before any event was read (a wrong key, a body over
/// the limit) is a Pipeline row with its sender, status and reason, failed (not partial).
#[test]
fn pipeline_refused() {
    snap("pipeline_refused", |a| {
        with_refusals(a);
        press(a, "6");
    });
}

/// Issue 16, item 7: the refused requests come first in "failed, then slowest first", from
/// the first frame.
#[test]
fn pipeline_refused_slowest_first() {
    snap("pipeline_refused_slowest", |a| {
        with_refusals(a);
        press(a, "6 o");
    });
}

/// Issue 16, item 5: the detail of a refused request says who sent it and why.
#[test]
fn pipeline_refused_detail() {
    snap("pipeline_refused_detail", |a| {
        with_refusals(a);
        press(a, "6 G enter");
    });
}

/// Issue 17: the Drift view, the stored keys by type, newest first.
#[test]
fn drift() {
    snap("drift", |a| {
        press(a, "7");
        a.live.drift.answer(Ok(json!({"drift": [
            {"type": "log", "path": "/payload/region", "kind": "unknown_field", "count": 1204,
             "first_seen": "2026-12-01T09:12:00.000Z", "last_seen": "2026-12-03T07:20:11.532Z",
             "agent_versions": ["1.4.2", "1.5.0"], "applications": ["shop"],
             "sample": "\"eu-west-1\"", "example_event_id": "drift-1"},
            {"type": "request", "path": "/payload/status_code", "kind": "coerced", "count": 88,
             "first_seen": "2026-12-02T10:00:00.000Z", "last_seen": "2026-12-03T07:19:00.000Z",
             "agent_versions": ["1.5.0"], "applications": ["shop", "blog"],
             "sample": "\"200\"", "example_event_id": "drift-2"},
            {"type": "queue_depth", "path": "", "kind": "unknown_type", "count": 12,
             "first_seen": "2026-12-03T07:00:00.000Z", "last_seen": "2026-12-03T07:18:00.000Z",
             "agent_versions": [], "applications": ["blog"],
             "sample": "{\"queue\":\"default\",\"depth\":4}", "example_event_id": null},
            {"type": "log", "path": "/deploy_ring", "kind": "unknown_envelope_field", "count": 3,
             "first_seen": "2026-12-03T06:00:00.000Z", "last_seen": "2026-12-03T06:30:00.000Z",
             "agent_versions": ["1.5.0"], "applications": ["shop"],
             "sample": "\"canary\"", "example_event_id": "drift-4"}
        ], "overflow": []})));
    });
}
