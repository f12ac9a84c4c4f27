//! Compiled definitions, kept for the journey versions in use and bounded in number.
//!
//! A compiled definition (parsed steps and CEL programs) costs about 2.2 KB for a two-step
//! journey (heaptrack); kept for every version of every journey, 10,000 journeys held 22 MB
//! that an idle engine never reads. The cache keeps the most recently used ones and, for every
//! version it has compiled, what kind of entry it has: that is all event ingestion and profile
//! upserts need to pass over the journeys they cannot enter, without compiling them again.

use std::collections::HashMap;
use std::sync::Arc;

use super::definition::{CEntry, CompiledDefinition};

/// Compiled definitions kept at most; a version compiles again (from the stored JSON) after
/// it was evicted.
pub(crate) const COMPILED_DEFINITIONS_KEPT: usize = 1024;

/// (journey id, version)
type VersionKey = (i64, i64);

/// How a version admits profiles, without its conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Event(Box<str>),
    Qualification,
    Read,
}

impl EntryKind {
    pub(crate) fn of(def: &CompiledDefinition) -> Self {
        match &def.entry {
            CEntry::Event { name, .. } => EntryKind::Event(name.as_str().into()),
            CEntry::Qualification { .. } => EntryKind::Qualification,
            CEntry::Read { .. } => EntryKind::Read,
        }
    }
}

pub(crate) struct DefinitionCache {
    capacity: usize,
    compiled: HashMap<VersionKey, (Arc<CompiledDefinition>, u64)>,
    /// The entry of every version compiled so far.
    entries: HashMap<VersionKey, EntryKind>,
    uses: u64,
}

impl DefinitionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        DefinitionCache {
            capacity: capacity.max(1),
            compiled: HashMap::new(),
            entries: HashMap::new(),
            uses: 0,
        }
    }

    pub(crate) fn get(&mut self, key: VersionKey) -> Option<Arc<CompiledDefinition>> {
        self.uses += 1;
        let uses = self.uses;
        self.compiled.get_mut(&key).map(|(def, last)| {
            *last = uses;
            def.clone()
        })
    }

    pub(crate) fn insert(&mut self, key: VersionKey, def: Arc<CompiledDefinition>) {
        self.entries.insert(key, EntryKind::of(&def));
        self.uses += 1;
        self.compiled.insert(key, (def, self.uses));
        if self.compiled.len() > self.capacity {
            self.evict();
        }
    }

    /// The entry of version `key`; `None` when that version was never compiled here.
    pub(crate) fn entry(&self, key: VersionKey) -> Option<EntryKind> {
        self.entries.get(&key).cloned()
    }

    pub(crate) fn forget_journey(&mut self, journey_id: i64) {
        self.compiled.retain(|(j, _), _| *j != journey_id);
        self.entries.retain(|(j, _), _| *j != journey_id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.compiled.len()
    }

    /// Drops the least recently used quarter at once, so a scan over many journeys evicts
    /// once per `capacity / 4` compilations rather than on each.
    fn evict(&mut self) {
        let keep = self.capacity - self.capacity / 4;
        let mut by_use: Vec<(u64, VersionKey)> = self
            .compiled
            .iter()
            .map(|(k, (_, last))| (*last, *k))
            .collect();
        by_use.sort_unstable();
        let drop = by_use.len().saturating_sub(keep);
        for (_, key) in by_use.into_iter().take(drop) {
            self.compiled.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{Definition, compile};

    fn compiled(entry_event: &str) -> Arc<CompiledDefinition> {
        let def: Definition = serde_json::from_value(serde_json::json!({
            "entry": {"event": {"name": entry_event}},
            "steps": [{"id": "a", "exit": {}}]
        }))
        .expect("definition");
        Arc::new(compile(&def, &Default::default()).expect("compile"))
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let mut cache = DefinitionCache::new(8);
        for j in 0..100 {
            cache.insert((j, 1), compiled("E"));
            assert!(cache.len() <= 8, "{} after {j}", cache.len());
        }
        assert!(cache.get((99, 1)).is_some(), "the newest stays");
        assert!(cache.get((0, 1)).is_none(), "the oldest went");
    }

    #[test]
    fn recently_used_definitions_survive_eviction() {
        let mut cache = DefinitionCache::new(8);
        cache.insert((1, 1), compiled("E"));
        for j in 2..40 {
            assert!(cache.get((1, 1)).is_some(), "journey 1 is in use at {j}");
            cache.insert((j, 1), compiled("E"));
        }
    }

    #[test]
    fn entries_are_remembered_after_eviction_and_forgotten_with_the_journey() {
        let signup = || EntryKind::Event("Signup".into());
        let mut cache = DefinitionCache::new(2);
        cache.insert((1, 1), compiled("Signup"));
        cache.insert((1, 2), compiled("Purchase"));
        cache.insert((2, 1), compiled("Signup"));
        cache.insert((3, 1), compiled("Signup"));
        assert!(cache.get((1, 1)).is_none(), "evicted");
        assert_eq!(cache.entry((1, 1)), Some(signup()));
        assert_eq!(
            cache.entry((1, 2)),
            Some(EntryKind::Event("Purchase".into()))
        );
        assert_eq!(cache.entry((9, 1)), None, "never compiled");
        cache.forget_journey(1);
        assert_eq!(cache.entry((1, 1)), None);
        assert_eq!(cache.entry((2, 1)), Some(signup()));
    }
}
