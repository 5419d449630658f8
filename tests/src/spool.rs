//! Helpers for tests that run the batcher over a real spool in process.

use std::time::Duration;

use baddybugs_ingest::batch::CHECKPOINT;
use baddybugs_ingest::spool::Spool;

use crate::server::wait_for;

/// Waits until the store's checkpoint (`batch::CHECKPOINT`) has reached `lsn`: every record up
/// to it is stored. Fails with `what` after `within`.
pub async fn wait_stored_up_to(
    spool: &Spool,
    lsn: u64,
    within: Duration,
    what: &str,
) -> anyhow::Result<()> {
    wait_for(within, what, || async {
        let status = spool.status();
        let checkpoint = status
            .consumers
            .iter()
            .find(|c| c.name == CHECKPOINT)?
            .checkpoint_lsn;
        (checkpoint >= lsn).then_some(())
    })
    .await
}
