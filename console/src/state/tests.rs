use super::fixtures::{self, demo_feed, hello, metrics, msg, T0};
use super::tail::Entry;
use super::*;
use baddybugs_common::protocol::ServerMessage;

fn fed() -> FeedState {
    let mut s = FeedState::default();
    for (i, e) in demo_feed().into_iter().enumerate() {
        s.apply(e, T0 + i as i64);
    }
    s
}

#[test]
fn applies_every_kind_of_message() {
    let s = fed();
    assert!(matches!(s.conn, Conn::Connected { .. }));
    assert_eq!(s.hello.as_ref().unwrap().instance_id, "inst-a");
    assert_eq!(s.events.len(), 24);
    assert_eq!(s.malformed.len(), 5);
    assert_eq!(s.lifecycles.len(), 4);
    assert_eq!(s.pipeline.len(), 4);
    let m = s.metrics.as_ref().unwrap();
    assert_eq!(m.uptime_secs, 3_601.0);
    // Totals grew by 50+1+5+80+120+30 = 286 in one second.
    assert_eq!(s.rates.received, 286.0);
    assert!(s.rates.accepted > 0.0);
    assert_eq!(s.last_data_ms, Some(T0 + 41));
}

#[test]
fn replies_are_returned() {
    let mut s = fed();
    let r = s.apply(
        msg(
            99,
            ServerMessage::Result {
                id: "q1".into(),
                data: serde_json::json!([1]),
            },
        ),
        T0,
    );
    assert_eq!(
        r,
        Some(Reply {
            id: "q1".into(),
            data: Ok(serde_json::json!([1]))
        })
    );
    let r = s.apply(
        msg(
            100,
            ServerMessage::Error {
                id: Some("q2".into()),
                message: "no".into(),
            },
        ),
        T0,
    );
    assert_eq!(r.unwrap().data, Err("no".into()));
}

#[test]
fn tails_are_bounded() {
    let mut s = FeedState::default();
    for i in 0..(EVENTS_CAP as u64 + 500) {
        s.apply(
            msg(
                i + 1,
                ServerMessage::Event(Box::new(fixtures::event(i, "log", "x"))),
            ),
            T0,
        );
    }
    assert_eq!(s.events.len(), EVENTS_CAP);
    assert_eq!(s.events.pushed, EVENTS_CAP as u64 + 500);
    assert_eq!(s.events.items().next().unwrap().ev.id, "evt-0500");
}

#[test]
fn reconnect_to_a_new_instance_is_a_restart() {
    let mut s = fed();
    s.apply(
        FeedEvent::Disconnected {
            error: "connection reset".into(),
            attempt: 1,
            retry_in_ms: 500,
        },
        T0 + 1_000,
    );
    assert_eq!(s.disconnected_at_ms, Some(T0 + 1_000));
    assert_eq!(s.stale_for_ms(T0 + 5_000), Some(5_000 - 41));
    assert!(
        matches!(s.conn, Conn::Waiting { attempt: 1, retry_at_ms, .. } if retry_at_ms == T0 + 1_500)
    );
    // The data stays while disconnected.
    assert_eq!(s.events.len(), 25);
    s.apply(FeedEvent::Connected, T0 + 2_000);
    s.apply(msg(1, hello("inst-b")), T0 + 2_000);
    let restart = s.restart.clone().expect("a restart");
    assert_eq!(
        (restart.old_instance.as_str(), restart.new_instance.as_str()),
        ("inst-a", "inst-b")
    );
    assert_eq!(s.events.len(), 0);
    assert!(s.metrics.is_none());
    assert_eq!(s.blips, 0);
    assert_eq!(s.disconnected_at_ms, None);
    assert_eq!(s.stale_for_ms(T0 + 3_000), None);
}

#[test]
fn reconnect_to_the_same_instance_is_a_blip_with_a_marker() {
    let mut s = fed();
    s.apply(
        FeedEvent::Disconnected {
            error: "timeout".into(),
            attempt: 1,
            retry_in_ms: 500,
        },
        T0 + 1_000,
    );
    s.apply(FeedEvent::Connected, T0 + 2_000);
    s.apply(msg(1, hello("inst-a")), T0 + 2_000);
    assert!(s.restart.is_none());
    assert_eq!(s.blips, 1);
    assert_eq!(s.events.len(), 25, "kept, plus one marker");
    match s.events.entries().last().unwrap() {
        Entry::Marker(text) => assert!(text.contains("same server"), "{text}"),
        Entry::Item(_) => panic!("expected a marker"),
    }
}

#[test]
fn gaps_and_drops_are_counted_and_marked() {
    let mut s = fed();
    s.apply(FeedEvent::Gap { missed: 4 }, T0);
    s.apply(
        msg(
            60,
            ServerMessage::Dropped {
                count: 10,
                total: 10,
            },
        ),
        T0,
    );
    s.apply(FeedEvent::LagDropped(3), T0);
    assert_eq!(
        (s.gap_frames, s.server_dropped, s.lag_dropped, s.drops()),
        (4, 10, 3, 13)
    );
    assert!(matches!(
        s.malformed.entries().last(),
        Some(Entry::Marker(_))
    ));
}

#[test]
fn first_metrics_uses_server_rate() {
    let mut s = FeedState::default();
    s.apply(msg(1, metrics(0)), T0);
    assert_eq!(s.rates.received, 285.0);
}

/// Issue 16, item 3: after a reconnect (`R`) to the same server, the tails it sends again are
/// not added twice; what is new is.
#[test]
fn a_reconnect_does_not_double_the_replayed_tails() {
    let mut s = fed();
    s.apply(
        FeedEvent::Disconnected {
            error: "reconnect requested".into(),
            attempt: 1,
            retry_in_ms: 0,
        },
        T0 + 100,
    );
    s.apply(FeedEvent::Connected, T0 + 101);
    s.apply(msg(1, hello("inst-a")), T0 + 102);
    let items = |s: &FeedState| s.malformed.items().count();
    let before = (s.events.items().count(), items(&s));
    let mut seq = 2;
    for i in 0..5 {
        s.apply(
            msg(
                seq,
                ServerMessage::Malformed(Box::new(fixtures::malformed(i))),
            ),
            T0 + 103,
        );
        seq += 1;
    }
    for i in 20..24 {
        let e = fixtures::event(i, "cache", "k");
        s.apply(msg(seq, ServerMessage::Event(Box::new(e))), T0 + 103);
        seq += 1;
    }
    assert_eq!((s.events.items().count(), items(&s)), before);
    s.apply(
        msg(
            seq,
            ServerMessage::Malformed(Box::new(fixtures::malformed(5))),
        ),
        T0 + 104,
    );
    assert_eq!(items(&s), before.1 + 1, "a new rejection is added");
}
