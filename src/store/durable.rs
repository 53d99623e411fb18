//! Flushing that reaches stable storage. sled 0.34's `Db::flush` writes its
//! log with `sync_file_range`, which waits for the data to reach the device
//! but neither commits the file's new size nor flushes the device's write
//! cache. It also writes items larger than a quarter of a segment to files
//! under `blobs/` without syncing them. Only sled's background thread calls
//! `fsync`, every 500 ms (see `pagecache/iobuf.rs`, `blob_io.rs` and
//! `flusher.rs` in sled 0.34). A process killed with SIGKILL loses nothing
//! either way, since the page cache survives it; a power cut could.
//! [`Durable::flush`] therefore follows `Db::flush` with `fdatasync` on the
//! log file and on each blob file it has not synced yet.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) struct Durable {
    db: sled::Db,
    /// sled's log file, `<data>/db`.
    log: File,
    blobs: PathBuf,
    /// Names of the blob files already synced.
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl Durable {
    /// Wraps the database sled opened in `dir`.
    pub(crate) fn new(db: sled::Db, dir: &Path) -> sled::Result<Self> {
        let log = File::open(dir.join("db"))?;
        Ok(Durable {
            db,
            log,
            blobs: dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        })
    }

    /// Writes every buffered change and waits until it is on stable
    /// storage.
    pub(crate) fn flush(&self) -> sled::Result<()> {
        self.db.flush()?;
        self.log.sync_data()?;
        self.sync_new_blobs()?;
        Ok(())
    }

    /// Syncs blob files written since the last call, then their directory
    /// so their names survive too. Files sled has removed are forgotten.
    fn sync_new_blobs(&self) -> std::io::Result<()> {
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut present = HashSet::new();
        let mut new_files = false;
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(self.blobs.join(&name)) {
                    Ok(file) => file.sync_data()?,
                    // sled removed it in between.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
                new_files = true;
            }
            present.insert(name);
        }
        if new_files {
            File::open(&self.blobs)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }
}
