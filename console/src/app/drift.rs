//! The Drift view's requests: the stored drift keys (the feed's `drift` query, asked when the
//! view opens and every few seconds while it is shown) and a key's example event (`get`).

use baddybugs_common::protocol::ClientMessage;
use baddybugs_common::query::{DriftFilter, Query};
use serde_json::Value;

use super::view::{Screen, View};
use super::{App, Command, Pending};
use crate::state::convert::stored_event;

/// How often the Drift view asks again for the stored keys while it is shown, ms.
pub(crate) const DRIFT_REFRESH_MS: i64 = 5_000;

impl App {
    /// Asks for the stored drift keys, unless a request is out.
    pub(crate) fn refresh_drift(&mut self) -> Vec<Command> {
        if self.live.drift.loading {
            return Vec::new();
        }
        self.live.drift.loading = true;
        self.drift_asked_ms = self.now_ms;
        vec![self.query(Query::Drift(DriftFilter::default()), Pending::Drift)]
    }

    /// At a clock tick: ask again when the Drift view is shown and its keys are old.
    pub(crate) fn tick_drift(&mut self) -> Vec<Command> {
        if self.view == View::Drift
            && self.screen().is_none()
            && self.now_ms - self.drift_asked_ms >= DRIFT_REFRESH_MS
        {
            return self.refresh_drift();
        }
        Vec::new()
    }

    /// Asks the store for the example event of a drift key.
    pub(super) fn open_drift_example(&mut self, event_id: String) -> Vec<Command> {
        self.next_id += 1;
        let id = format!("c{}", self.next_id);
        self.pending
            .insert(id.clone(), Pending::DriftExample(event_id.clone()));
        self.say(format!("loading event {event_id} from the store…"));
        vec![Command::Send(Box::new(ClientMessage::Get {
            id,
            event_id,
            organization: None,
            application: None,
        }))]
    }

    /// The example event: opened as an event (the first, when several tenants share the id).
    pub(super) fn on_drift_example(&mut self, event_id: &str, data: Result<Value, String>) {
        let value = match data {
            Ok(v) => v,
            Err(e) => {
                self.say(format!("event {event_id}: {e}"));
                return;
            }
        };
        let event = match value.get("events").and_then(Value::as_array) {
            Some(several) => several.first().map(stored_event),
            None => Some(stored_event(&value)),
        };
        match event {
            Some(event) => {
                self.notice = None;
                self.stacks[View::Drift.index()].push(Screen::Event {
                    event: Box::new(event),
                    scroll: 0,
                });
            }
            None => self.say(format!("event {event_id} is not in the store")),
        }
    }
}

#[cfg(test)]
mod tests {
    use baddybugs_common::drift::DriftKind;
    use baddybugs_common::protocol::{ClientMessage, DriftNotice, ServerMessage};
    use baddybugs_common::query::Query;
    use serde_json::json;

    use super::super::tests::{demo_app, press};
    use super::super::view::{Screen, View};
    use super::super::{Command, Pending};
    use super::DRIFT_REFRESH_MS;
    use crate::action::Action;
    use crate::state::fixtures::msg;
    use crate::ui::overview::warnings;

    fn notice() -> DriftNotice {
        DriftNotice {
            event_type: "log".into(),
            path: "/payload/region".into(),
            drift_kind: DriftKind::UnknownField,
            sample: "\"eu\"".into(),
            example_event_id: Some("drift-1".into()),
            application: "shop".into(),
            agent_version: Some("1.0.0".into()),
            seen_at: "2026-12-03T07:20:11.532Z".into(),
        }
    }

    fn sent_query(commands: &[Command]) -> Option<(String, Query)> {
        commands.iter().find_map(|c| match c {
            Command::Send(m) => match m.as_ref() {
                ClientMessage::Query { id, query } => Some((id.clone(), query.clone())),
                _ => None,
            },
            _ => None,
        })
    }

    #[test]
    fn the_view_asks_for_the_stored_keys_and_again_while_shown() {
        let mut app = demo_app();
        let commands = press(&mut app, "7");
        assert_eq!(app.view, View::Drift);
        let (id, query) = sent_query(&commands).expect("a drift query");
        assert!(matches!(query, Query::Drift(_)));
        assert_eq!(app.pending.get(&id), Some(&Pending::Drift));
        // One at a time: no second query while the first is out.
        assert!(app
            .update(Action::Tick(app.now_ms + DRIFT_REFRESH_MS))
            .is_empty());
        app.update(Action::NetFrom(
            0,
            msg(
                900,
                ServerMessage::Result {
                    id,
                    data: json!({"drift": [{"type": "log", "path": "/payload/region",
                        "kind": "unknown_field", "count": 7, "first_seen": "2026-12-03T07:00:00Z",
                        "last_seen": "2026-12-03T07:20:11.532Z", "agent_versions": ["1.0.0"],
                        "applications": ["shop"], "sample": "\"eu\"", "example_event_id": "drift-1"}],
                        "overflow": []}),
                },
            ),
        ));
        assert_eq!(app.live.drift.rows()[0].count, 7);
        let later = app.now_ms + DRIFT_REFRESH_MS;
        let again = app.update(Action::Tick(later));
        assert!(
            sent_query(&again).is_some(),
            "asked again after {DRIFT_REFRESH_MS} ms"
        );
    }

    #[test]
    fn a_new_key_is_listed_warned_and_enter_opens_its_example_event() {
        let mut app = demo_app();
        app.update(Action::NetFrom(
            0,
            msg(901, ServerMessage::Drift(Box::new(notice()))),
        ));
        let warned = warnings(&app.live);
        assert!(
            warned
                .iter()
                .any(|(_, w)| w
                    .contains("schema drift: new unknown_field log/payload/region in shop")),
            "{warned:?}"
        );
        press(&mut app, "7");
        let commands = press(&mut app, "enter");
        let (id, event_id) = commands
            .iter()
            .find_map(|c| match c {
                Command::Send(m) => match m.as_ref() {
                    ClientMessage::Get { id, event_id, .. } => Some((id.clone(), event_id.clone())),
                    _ => None,
                },
                _ => None,
            })
            .expect("a get of the example event");
        assert_eq!(event_id, "drift-1");
        app.update(Action::NetFrom(
            0,
            msg(
                902,
                ServerMessage::Result {
                    id,
                    data: json!({"id": "drift-1", "type": "log", "name": "info",
                        "timestamp": "2026-12-03T07:20:11.000Z", "received_at": "2026-12-03T07:20:11.532Z",
                        "trace_id": "", "environment": "production", "organization": "acme",
                        "application": "shop", "is_error": false, "data": {"region": "eu"},
                        "envelope": {}}),
                },
            ),
        ));
        match app.screen() {
            Some(Screen::Event { event, .. }) => assert_eq!(event.id, "drift-1"),
            other => panic!("the example event is open: {other:?}"),
        }
    }
}
