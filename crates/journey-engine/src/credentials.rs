//! Destination credentials files (a bearer token, as a mounted Secret key): read once, read
//! again when the file changes on disk (Secret rotation), and never skipped: a file that cannot
//! be read fails the delivery with the reason instead of sending the request without
//! credentials.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How often a file is looked at again (its modification time and size) to notice a change:
/// a sender sending thousands of deliveries a second stats each file at most once a second.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What identifies one version of a file on disk. Kubernetes swaps a Secret mount's symlink
/// on rotation, which changes the target's inode and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    /// The file's stamp now (it follows symlinks, as reading does).
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    Stamp::of(path)
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    checked: Instant,
    value: String,
}

/// The credentials files of every destination, as last read.
#[derive(Debug, Default)]
pub struct CredentialFiles {
    files: Mutex<HashMap<PathBuf, Cached>>,
}

impl CredentialFiles {
    /// The file's contents, trimmed: from memory when it was looked at less than a second ago,
    /// read again when its time, size or inode changed. An unreadable, non-UTF-8 or empty file
    /// is an error naming the file (never its contents).
    pub fn read(&self, path: &Path) -> Result<String, String> {
        self.read_at(path, Instant::now())
    }

    /// [`CredentialFiles::read`] at a given instant (tests pass their own).
    fn read_at(&self, path: &Path, now: Instant) -> Result<String, String> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = files.get_mut(path) {
            if now.duration_since(c.checked) < RECHECK {
                return Ok(c.value.clone());
            }
            if stamp(path).is_ok_and(|s| s == c.stamp) {
                c.checked = now;
                return Ok(c.value.clone());
            }
        }
        // Changed, never read, or gone: read it now (and forget what it said before, so a
        // removed file is never replaced by its old contents).
        files.remove(path);
        let fail = |why: String| {
            format!(
                "credentials file {}: {why}; nothing was sent",
                path.display()
            )
        };
        let before = stamp(path).map_err(|e| fail(e.to_string()))?;
        let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8(text).map_err(|_| fail("not UTF-8 text".into()))?;
        let value = text.trim().to_string();
        if value.is_empty() {
            return Err(fail("empty".into()));
        }
        files.insert(
            path.to_path_buf(),
            Cached {
                stamp: before,
                checked: now,
                value: value.clone(),
            },
        );
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_once_reread_on_change_and_fail_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let files = CredentialFiles::default();
        let start = Instant::now();
        let later = |n: u32| start + RECHECK * n + Duration::from_millis(1);
        let missing = files.read_at(&path, start).expect_err("missing");
        assert!(
            missing.contains("token") && missing.contains("nothing was sent"),
            "{missing}"
        );

        std::fs::write(&path, "first\n").expect("write");
        assert_eq!(files.read_at(&path, start).as_deref(), Ok("first"));
        // A rotation writes a new file (new inode), as a Secret mount does.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "second-token").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        // Within the recheck interval the cached value stands; after it the new one is read.
        assert_eq!(files.read_at(&path, start).as_deref(), Ok("first"));
        assert_eq!(
            files.read_at(&path, later(1)).as_deref(),
            Ok("second-token")
        );
        assert_eq!(
            files.read_at(&path, later(2)).as_deref(),
            Ok("second-token")
        );

        std::fs::write(&path, "  \n").expect("write");
        let empty = files.read_at(&path, later(3)).expect_err("empty");
        assert!(empty.contains("empty"), "{empty}");
        std::fs::remove_file(&path).expect("remove");
        assert!(
            files.read_at(&path, later(4)).is_err(),
            "a removed file is never its old contents"
        );
    }
}
