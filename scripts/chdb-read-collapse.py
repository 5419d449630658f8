"""What does it cost to read each event once when two nodes stored it? (chDB, the real engine)

    target/chdb-venv/bin/python scripts/chdb-read-collapse.py [ROWS]   (default 5000000)

`events` has no unique key: an agent retry that reached a second node after the first had
stored the batch is stored by both. The list query (`GET /v1/events`) must show it once. Two
ways, timed here on ROWS synthetic rows in the `events` table as `baddybugs-ingest schema`
creates it (median of 7 runs of a 100-event page, all events and one type):
  page (before)        ORDER BY timestamp DESC, event_id DESC LIMIT 100 (copies shown twice)
  page + tie-break     what the server runs: a sort key that puts copies side by side, 16 rows
                       more, the copies dropped in the server (sink/clickhouse/read.rs)
  LIMIT 1 BY           the same in SQL: LIMIT 1 BY organization, application, event_id
Needs a server binary (target/release or target/debug) and the chDB venv
(bash tests/clickhouse/setup.sh). Uses a scratch directory under target/.
"""
import os, re, shutil, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "chdb-read-collapse")
rows = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000
binary = next(
    p for p in (os.path.join(ROOT, "target", b, "baddybugs-ingest") for b in ("release", "debug"))
    if os.path.exists(p)
)
ddl = subprocess.run([binary, "schema"], capture_output=True, text=True, check=True).stdout
events = re.search(r"(CREATE TABLE IF NOT EXISTS `default`.`events` \(.*?;)", ddl, re.S).group(1)
events = events.replace("`default`.", "").rstrip(";")

from chdb import session

shutil.rmtree(WORK, ignore_errors=True)
s = session.Session(os.path.join(WORK, "db"))
s.query(events)
s.query(f"""
INSERT INTO events (event_id, organization, application, environment, type, name, timestamp,
    timestamp_source, received_at, trace_id, batch_id, lsn, idx, known_type, is_error, data, envelope)
SELECT toString(generateUUIDv4()), 'acme', 'shop', 'production',
    ['request', 'query', 'cache', 'log'][number % 4 + 1], 'GET /x', now64(3) - number / 100,
    'timestamp', now64(3), 't', 'b', number, 0, true, false, '{{"a":1}}', '{{}}'
FROM numbers({rows})""")
print(f"{rows} rows in events")
TIE = "ORDER BY timestamp DESC, event_id DESC, organization, application, received_at, lsn, idx LIMIT 116"
queries = {
    "page (before)": "SELECT * FROM events ORDER BY timestamp DESC, event_id DESC LIMIT 100",
    "page + tie-break (server)": f"SELECT * FROM events {TIE}",
    "LIMIT 1 BY": "SELECT * FROM events ORDER BY timestamp DESC, event_id DESC "
    "LIMIT 1 BY organization, application, event_id LIMIT 100",
    "type: page (before)": "SELECT * FROM events WHERE type = 'request' "
    "ORDER BY timestamp DESC, event_id DESC LIMIT 100",
    "type: page + tie-break (server)": f"SELECT * FROM events WHERE type = 'request' {TIE}",
    "type: LIMIT 1 BY": "SELECT * FROM events WHERE type = 'request' ORDER BY timestamp DESC, "
    "event_id DESC LIMIT 1 BY organization, application, event_id LIMIT 100",
}
for name, sql in queries.items():
    times = []
    for _ in range(7):
        t = time.perf_counter()
        s.query(sql, "Null")
        times.append(time.perf_counter() - t)
    print(f"{name:34s} median {statistics.median(times) * 1000:8.1f} ms")
