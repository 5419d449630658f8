//! Criterion benchmarks of the event model (filled in by the benchmark suite).
fn main() {}
