//! Marks a build whose tests use an external ClickHouse (`CLICKHOUSE_URL` set and not empty).
//!
//! Two drills must stop and restart the ClickHouse server, which an external one does not allow.
//! Under `cfg(external_clickhouse)` they are marked ignored with the reason, so the run reports
//! them as skipped instead of counting a test that did nothing as passed.

fn main() {
    println!("cargo::rerun-if-env-changed=CLICKHOUSE_URL");
    println!("cargo::rustc-check-cfg=cfg(external_clickhouse)");
    let external = std::env::var("CLICKHOUSE_URL").is_ok_and(|url| !url.trim().is_empty());
    if external {
        println!("cargo::rustc-cfg=external_clickhouse");
    }
}
