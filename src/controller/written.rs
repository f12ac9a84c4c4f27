//! Statuses the controller wrote that its watch cache may not have caught up with yet.
//!
//! A reconcile started by the engine's change stream right after a status write reads the
//! object from the watch cache, which can still hold the status from before that write. Taken
//! as the truth, that stale status makes the reconcile write the same status again and
//! announce the same transition twice (a cold start of 5,000 journeys wrote 5,542 statuses and
//! 546 duplicate `Published` events that way). Each entry lives from the write until the watch
//! delivers an object at least as new, so the map holds only writes in flight.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::status::JourneyStatus;

#[derive(Default)]
pub struct WrittenStatuses {
    by_key: Mutex<HashMap<String, (u64, JourneyStatus)>>,
}

/// resourceVersions are opaque to clients in general; the apiserver's are etcd revisions,
/// which only grow. One that does not parse is treated as unknown, never as newer.
fn revision(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|rv| rv.parse().ok())
}

impl WrittenStatuses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, JourneyStatus)>> {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `status` as written at `resource_version` (from the write's response).
    pub fn remember(&self, key: &str, resource_version: Option<&str>, status: &JourneyStatus) {
        if let Some(rv) = revision(resource_version) {
            self.lock().insert(key.to_string(), (rv, status.clone()));
        }
    }

    /// The status this controller wrote when the cached object (at `cached_rv`) predates that
    /// write; `None` when the cache is as new or newer, which also drops the entry.
    pub fn newer_than_cache(&self, key: &str, cached_rv: Option<&str>) -> Option<JourneyStatus> {
        let mut map = self.lock();
        let (written_rv, status) = map.get(key)?;
        match revision(cached_rv) {
            Some(cached) if cached < *written_rv => Some(status.clone()),
            _ => {
                map.remove(key);
                None
            }
        }
    }

    /// The watch delivered `key` at `resource_version`: entries it has caught up with go.
    pub fn observe(&self, key: &str, resource_version: Option<&str>) {
        let Some(seen) = revision(resource_version) else {
            return;
        };
        let mut map = self.lock();
        if map.get(key).is_some_and(|(written, _)| seen >= *written) {
            map.remove(key);
        }
    }

    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase_version: i64) -> JourneyStatus {
        JourneyStatus {
            version: Some(phase_version),
            ..JourneyStatus::default()
        }
    }

    #[test]
    fn a_cache_older_than_the_write_gets_the_written_status() {
        let w = WrittenStatuses::default();
        w.remember("ns/j", Some("100"), &status(1));
        assert_eq!(w.newer_than_cache("ns/j", Some("99")), Some(status(1)));
        assert_eq!(w.len(), 1, "kept until the cache catches up");
    }

    #[test]
    fn a_cache_as_new_as_the_write_wins_and_the_entry_goes() {
        let w = WrittenStatuses::default();
        w.remember("ns/j", Some("100"), &status(1));
        assert_eq!(w.newer_than_cache("ns/j", Some("100")), None);
        assert!(w.is_empty());
        w.remember("ns/j", Some("100"), &status(1));
        assert_eq!(w.newer_than_cache("ns/j", Some("250")), None);
        assert!(w.is_empty());
    }

    #[test]
    fn the_watch_catching_up_empties_the_map() {
        let w = WrittenStatuses::default();
        w.remember("ns/a", Some("100"), &status(1));
        w.remember("ns/b", Some("200"), &status(1));
        w.observe("ns/a", Some("100"));
        w.observe("ns/b", Some("150"));
        assert_eq!(w.len(), 1);
        w.observe("ns/b", Some("201"));
        assert!(w.is_empty());
    }

    #[test]
    fn unparseable_versions_never_count_as_newer() {
        let w = WrittenStatuses::default();
        w.remember("ns/j", Some("not-a-number"), &status(1));
        assert!(w.is_empty(), "nothing to compare against later");
        w.remember("ns/j", Some("100"), &status(1));
        assert_eq!(w.newer_than_cache("ns/j", Some("opaque")), None);
        assert!(w.is_empty());
        w.remember("ns/j", Some("100"), &status(1));
        w.forget("ns/j");
        assert!(w.is_empty());
    }
}
