//! Real faults for the drills: the kernel refusing writes to the embedded store's files.
//!
//! `chattr +i` (the ext4/xfs immutable attribute) makes every write to the SQLite database, its
//! WAL and its directory fail with EPERM, even through file descriptors the server already has
//! open — as root, plain permissions would not stop the server. The spool lives in a
//! subdirectory and keeps working, which is exactly a store outage. The same flag on the spool's
//! active segment is a spool write failure ([`Immutable`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

fn store_files(data_dir: &Path) -> Vec<PathBuf> {
    // Not the `-shm` file: SQLite maps it into memory, and a store write through that mapping
    // to an immutable file would kill the process with SIGBUS instead of failing a write.
    let mut files: Vec<PathBuf> = ["store.sqlite", "store.sqlite-wal"]
        .iter()
        .map(|f| data_dir.join(f))
        .filter(|p| p.exists())
        .collect();
    files.push(data_dir.to_path_buf());
    files
}

fn chattr(flag: &str, paths: &[PathBuf]) -> anyhow::Result<()> {
    let status = Command::new("chattr")
        .arg(flag)
        .args(paths)
        .status()
        .context("cannot run chattr (e2fsprogs)")?;
    if !status.success() {
        bail!("chattr {flag} failed on {paths:?} (needs root and an ext4/xfs filesystem)");
    }
    Ok(())
}

/// Makes the embedded store's files immutable: every store write fails from now on.
pub fn break_store(data_dir: &Path) -> anyhow::Result<()> {
    chattr("+i", &store_files(data_dir))
}

/// Undoes [`break_store`].
pub fn repair_store(data_dir: &Path) -> anyhow::Result<()> {
    chattr("-i", &store_files(data_dir))
}

/// The active (last) segment of the spool in `data_dir`.
pub fn active_spool_segment(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data_dir.join("spool"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments.pop().context("the spool has no segment yet")
}

/// Makes one file immutable until the guard is dropped: every write and truncate of it fails
/// with EPERM, through descriptors already open too (the spool writer's, for a segment).
pub struct Immutable(Option<PathBuf>);

impl Immutable {
    /// Sets `chattr +i` on `path`.
    pub fn set(path: &Path) -> anyhow::Result<Immutable> {
        chattr("+i", &[path.to_path_buf()])?;
        Ok(Immutable(Some(path.to_path_buf())))
    }

    /// Undoes it now (also done on drop, so a failed test leaves a removable temp dir).
    pub fn clear(mut self) -> anyhow::Result<()> {
        match self.0.take() {
            Some(path) => chattr("-i", &[path]),
            None => Ok(()),
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = chattr("-i", &[path]);
        }
    }
}

/// A small tmpfs mounted on a directory until the guard is dropped: a disk that fills up
/// (writes fail with ENOSPC) and frees space when files are deleted. Needs root (CI runs as
/// root, like the `chattr` drills).
pub struct SmallDisk(Option<PathBuf>);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`2m`) on `dir` (which must exist, and is hidden meanwhile).
    pub fn mount(dir: &Path, size: &str) -> anyhow::Result<SmallDisk> {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "baddybugs-test",
            ])
            .arg(dir)
            .status()
            .context("cannot run mount")?;
        if !status.success() {
            bail!(
                "mounting a {size} tmpfs on {} failed (needs root)",
                dir.display()
            );
        }
        Ok(SmallDisk(Some(dir.to_path_buf())))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            // Lazy: a server still running on it must not keep the mount alive.
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
        }
    }
}
