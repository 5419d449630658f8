//! The writer's file operations behind one seam, and the bounded names of I/O failures.
//!
//! In: the writer's create / open / write / truncate / sync calls on segment files. Out: the
//! same calls on real files ([`RealIo`]); the unit tests substitute an implementation that fails
//! on demand, so every failure path of the writer is exercised without a broken disk.
//!
//! [`kind_label`] turns an `std::io::Error` into one of a few stable names (`no_space`,
//! `io_error`, …): ENOSPC and EIO stay apart in the log and in the
//! `baddybugs_ingest_spool_errors_total{op,kind}` metric, whose cardinality stays bounded.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// Opens segment files for the writer.
pub(crate) trait SegmentIo: Send + Sync {
    /// Creates (or empties) a segment file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an existing segment file; writes go to its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
}

/// One open segment file.
pub(crate) trait SegmentFile: Send {
    /// Writes all of `buf` at the end of the file (on error, some of it may have been written).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes; the next write goes at `len`.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the data written so far is durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// `fsync`: data and metadata (the length after a cut) are durable.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// Real files.
pub(crate) struct RealIo;

struct RealFile(File);

impl SegmentIo for RealIo {
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Box::new(RealFile(file)))
    }
}

impl SegmentFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        // Not in append mode: without this the next write would leave a hole of zeros where
        // the cut bytes were, and every frame after it would be unreadable.
        self.0.seek(SeekFrom::Start(len))?;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

/// A stable, bounded name for an I/O error (a metric label and a log field).
pub fn kind_label(error: &io::Error) -> &'static str {
    use rustix::io::Errno;
    if error.raw_os_error().is_some() {
        let errno = Errno::from_io_error(error);
        match errno {
            Some(Errno::NOSPC) => return "no_space",
            Some(Errno::DQUOT) => return "disk_quota",
            Some(Errno::IO) => return "io_error",
            Some(Errno::ROFS) => return "read_only",
            Some(Errno::PERM) | Some(Errno::ACCESS) => return "permission_denied",
            Some(Errno::NOENT) => return "not_found",
            _ => {}
        }
    }
    match error.kind() {
        io::ErrorKind::StorageFull => "no_space",
        io::ErrorKind::PermissionDenied => "permission_denied",
        io::ErrorKind::NotFound => "not_found",
        io::ErrorKind::ReadOnlyFilesystem => "read_only",
        io::ErrorKind::UnexpectedEof => "unexpected_eof",
        io::ErrorKind::InvalidData => "invalid_data",
        _ => "other",
    }
}

/// A copy of an I/O error for a second reader (io errors are not `Clone`): same OS code when
/// there is one, else same kind and message.
pub(crate) fn copy_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_stay_apart() {
        let enospc = io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let eio = io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert_eq!(kind_label(&enospc), "no_space");
        assert_eq!(kind_label(&eio), "io_error");
        assert_eq!(kind_label(&copy_error(&eio)), "io_error");
        assert_eq!(kind_label(&io::Error::other("x")), "other");
    }
}
