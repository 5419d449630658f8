"""Where does ClickHouse's insert time go for the `events` table? (chDB, the real engine, in process)

    target/chdb-venv/bin/python scripts/chdb-insert-formats.py [ROWS]   (default 10000)

Builds ROWS synthetic `events` rows (about 930 bytes of JSON in `data`, a handful of distinct
organizations, types, hosts...), writes them once per table variant as RowBinaryWithNamesAndTypes
(what the `clickhouse` crate sends) and Native, and times `INSERT ... FROM INFILE` into a MergeTree
with the schema's partitioning and ORDER BY (best of 3), plus `INSERT ... SELECT` (no parsing) as
the floor. Variants of the version-1 DDL printed by `baddybugs-ingest schema`:
  full                 as created by migration 1 (LowCardinality columns, indexes, constraints)
  no_idx_constraints   without skip indexes and constraints
  no_lowcard           LowCardinality(T) -> T (what migration 2 makes of it)
  no_lowcard_no_idx    both
  zstd1                ZSTD(1) instead of ZSTD(3) on data/envelope
Needs the release server binary (cargo build --release -p baddybugs-ingest) and the chDB venv
(bash tests/clickhouse/setup.sh). Uses a scratch directory under target/.
"""
import os, re, subprocess, sys, time, shutil
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "chdb-insert-formats")
os.makedirs(WORK, exist_ok=True)
from chdb import session as S
ddl_all = subprocess.run([os.path.join(ROOT, "target/release/baddybugs-ingest"), "schema"], capture_output=True, text=True).stdout
ev = re.search(r"CREATE TABLE IF NOT EXISTS `default`.`events` \((.*?)\n\) ENGINE", ddl_all, re.S).group(1)
shutil.rmtree(os.path.join(WORK, "db"), ignore_errors=True)
s = S.Session(os.path.join(WORK, "db"))
def q(sql): return str(s.query(sql, "TSV"))
cols_only = "\n".join(l for l in ev.splitlines() if not l.strip().startswith(("INDEX", "CONSTRAINT")))
cols_only = cols_only.rstrip().rstrip(",")
variants = {
  "full": ev,
  "no_idx_constraints": cols_only,
  "no_lowcard": re.sub(r"LowCardinality\((Nullable\(String\)|String)\)", r"\1", ev),
  "no_lowcard_no_idx": re.sub(r"LowCardinality\((Nullable\(String\)|String)\)", r"\1", cols_only),
  "zstd1": ev.replace("ZSTD(3)", "ZSTD(1)"),
}
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
data = "concat('{\"sql\":\"select * from `orders` where `id` = ?\",\"bindings\":[', toString(number), '],\"time\":1.25,\"connection\":\"mysql\",\"caller\":{\"file\":\"app/Http/Controllers/OrderController.php\",\"line\":42}', repeat(',\"pad\":\"xxxxxxxxxx\"', 40), '}')"
q(f"""CREATE TABLE src ENGINE = Memory AS SELECT
 toString(generateUUIDv4()) AS event_id, 'acme' AS organization, 'shop' AS application, 'production' AS environment,
 ['query','cache','request','event','log'][number % 5 + 1] AS type, concat('name', toString(number % 50)) AS name,
 now64(3) AS timestamp, 'agent' AS timestamp_source, now64(3) AS received_at, hex(randomString(16)) AS trace_id,
 CAST(NULL AS Nullable(String)) AS session_id, CAST('v1.2.3' AS Nullable(String)) AS release, CAST('web-1' AS Nullable(String)) AS host,
 CAST(NULL AS Nullable(String)) AS deployment_hash, toString(generateUUIDv4()) AS batch_id, number AS lsn, toUInt32(number % 100) AS idx,
 true AS known_type, CAST(1.5 AS Nullable(Float64)) AS duration_ms, CAST(toString(number % 1000) AS Nullable(String)) AS user_id,
 CAST(200 AS Nullable(UInt16)) AS status_code, false AS is_error, CAST('info' AS Nullable(String)) AS severity,
 CAST(toString(generateUUIDv4()) AS Nullable(String)) AS request_id, CAST(NULL AS Nullable(String)) AS job_id,
 {data} AS data, concat('{{\"agent\":\"1.0\",\"n\":', toString(number), '}}') AS envelope
 FROM numbers({N})""")
print("avg data bytes", q("SELECT avg(length(data)) FROM src").strip())
for name, body in variants.items():
    q(f"CREATE TABLE t_{name} ({body}) ENGINE = MergeTree PARTITION BY toYYYYMM(received_at) ORDER BY (organization, application, type, timestamp, event_id) SETTINGS non_replicated_deduplication_window = 10000")
    q(f"CREATE TABLE src_{name} ENGINE = Memory AS SELECT * FROM t_{name} LIMIT 0")
    q(f"INSERT INTO src_{name} SELECT * FROM src")
    for fmt in ["RowBinaryWithNamesAndTypes", "Native"]:
        path = os.path.join(WORK, f"rows.{name}.{fmt}")
        if os.path.exists(path): os.remove(path)
        q(f"SELECT * FROM src_{name} INTO OUTFILE '{path}' FORMAT {fmt}")
        best = 9e9
        for i in range(3):
            t = time.perf_counter()
            q(f"INSERT INTO t_{name} FROM INFILE '{path}' FORMAT {fmt}")
            best = min(best, time.perf_counter() - t)
        print(f"{name:22s} {fmt:28s} {best*1000:7.1f} ms per {N} rows", flush=True)
    best = 9e9
    for i in range(3):
        t = time.perf_counter(); q(f"INSERT INTO t_{name} SELECT * FROM src_{name}"); best = min(best, time.perf_counter() - t)
    print(f"{name:22s} {'INSERT SELECT (no parse)':28s} {best*1000:7.1f} ms", flush=True)
