//! Fleet mode: three nodes' feeds driven through the app; what the views show of them.

use baddybugs_common::protocol::ServerMessage;

use super::tests::press;
use super::*;
use crate::app::rows;
use crate::snapshot_tests::draw;
use crate::state::fixtures::{self, hello, msg, T0};
use crate::state::tail::NodeIx;

const URLS: [&str; 3] = [
    "ws://127.0.0.1:8081/v1/feed",
    "ws://127.0.0.1:8082/v1/feed",
    "ws://127.0.0.1:8083/v1/feed",
];

fn fleet_app() -> App {
    let settings = Settings {
        url: URLS[0].into(),
        fleet: URLS.iter().map(|u| u.to_string()).collect(),
        ..Settings::default()
    };
    App::new(settings, KeyMap::default(), T0)
}

fn from(app: &mut App, node: NodeIx, event: FeedEvent) {
    app.update(Action::NetFrom(node, event));
}

/// Nodes 0 and 1 up with a metrics snapshot, an event and a rejection each; node 2 down.
fn busy_fleet() -> App {
    let mut app = fleet_app();
    for node in 0..2u16 {
        from(&mut app, node, FeedEvent::Connected);
        from(&mut app, node, msg(1, hello(&format!("inst-{node}"))));
        from(&mut app, node, msg(2, fixtures::metrics(1)));
        from(&mut app, node, msg(3, fixtures::metrics(2)));
        let e = fixtures::event(u64::from(node), "request", &format!("GET /n{node}"));
        from(&mut app, node, msg(4, ServerMessage::Event(Box::new(e))));
        let m = fixtures::malformed(u64::from(node));
        from(
            &mut app,
            node,
            msg(5, ServerMessage::Malformed(Box::new(m))),
        );
    }
    from(
        &mut app,
        2,
        FeedEvent::Disconnected {
            error: "Connection refused (os error 111)".into(),
            attempt: 2,
            retry_in_ms: 3_000,
        },
    );
    app.update(Action::Tick(T0 + 2_000));
    app
}

#[test]
fn one_url_is_not_a_fleet() {
    let app = App::new(Settings::default(), KeyMap::default(), T0);
    assert!(app.nodes.is_empty());
    assert!(app.live.node_names.is_empty());
}

#[test]
fn the_nodes_tails_are_merged_each_row_tagged_with_its_node() {
    let app = busy_fleet();
    let events = rows::events(&app.live, &app.filter);
    let tagged: Vec<(Option<NodeIx>, &str)> = events
        .iter()
        .filter_map(|r| Some((r.node, r.item()?.name.as_str())))
        .collect();
    assert_eq!(tagged, vec![(Some(0), "GET /n0"), (Some(1), "GET /n1")]);
    assert_eq!(rows::malformed(&app.live, &app.filter, None).len(), 2);
    // Each node keeps its own tail too (a reconnect replays against it).
    assert_eq!(app.nodes[1].state.events.pushed, 1);
}

#[test]
fn node_filter_keeps_one_nodes_rows() {
    let mut app = busy_fleet();
    app.set_filter("node:8082");
    let events = rows::events(&app.live, &app.filter);
    let names: Vec<&str> = events
        .iter()
        .filter_map(|r| Some(r.item()?.name.as_str()))
        .collect();
    assert_eq!(names, vec!["GET /n1"]);
    assert_eq!(app.filter.describe(), "node:8082");
}

#[test]
fn fleet_totals_are_the_sum_and_rates_count_only_nodes_that_are_up() {
    let mut app = busy_fleet();
    let one = app.nodes[0].state.metrics.clone().unwrap();
    let merged = app.live.metrics.clone().unwrap();
    assert_eq!(merged.totals.received, 2 * one.totals.received);
    let rate = app.nodes[0].state.rates.received;
    assert!(rate > 0.0);
    assert_eq!(app.live.rates.received, 2.0 * rate);
    from(
        &mut app,
        1,
        FeedEvent::Disconnected {
            error: "connection lost".into(),
            attempt: 1,
            retry_in_ms: 1_000,
        },
    );
    assert_eq!(app.live.rates.received, rate, "a down node adds no rate");
}

#[test]
fn a_down_node_is_flagged_and_its_restart_is_said() {
    let mut app = busy_fleet();
    assert!(app.nodes[2].trouble().unwrap().starts_with("DOWN"));
    assert!(matches!(
        app.live.conn,
        crate::state::Conn::Connected { .. }
    ));
    // Node 0 comes back as another instance (restarted): said, and marked in the merged tails.
    from(
        &mut app,
        0,
        FeedEvent::Disconnected {
            error: "connection lost".into(),
            attempt: 1,
            retry_in_ms: 500,
        },
    );
    from(&mut app, 0, FeedEvent::Connected);
    from(&mut app, 0, msg(1, hello("inst-0-again")));
    let notice = app.notice.clone().map(|(text, _)| text).unwrap_or_default();
    assert!(notice.contains("node :8081 restarted"), "{notice}");
    let markers: Vec<String> = app
        .live
        .events
        .entries()
        .filter_map(|e| match e {
            crate::state::tail::Entry::Marker(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert!(
        markers.iter().any(|m| m.contains(":8081 restarted")),
        "{markers:?}"
    );
}

#[test]
fn queries_go_to_a_node_that_is_up() {
    let mut app = busy_fleet();
    assert_eq!(app.query_node(), 0);
    from(
        &mut app,
        0,
        FeedEvent::Disconnected {
            error: "connection lost".into(),
            attempt: 1,
            retry_in_ms: 500,
        },
    );
    assert_eq!(app.query_node(), 1);
}

#[test]
fn fleet_overview_snapshot() {
    for (w, h) in [(80, 24), (200, 50)] {
        let mut app = busy_fleet();
        let backend = draw(&mut app, w, h);
        insta::assert_snapshot!(format!("fleet_overview_{w}x{h}"), backend);
    }
}

#[test]
fn fleet_events_snapshot() {
    for (w, h) in [(80, 24), (200, 50)] {
        let mut app = busy_fleet();
        press(&mut app, "3");
        let backend = draw(&mut app, w, h);
        insta::assert_snapshot!(format!("fleet_events_{w}x{h}"), backend);
    }
}
