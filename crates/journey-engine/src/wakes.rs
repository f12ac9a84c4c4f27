//! Which journeys a scheduler tick visits. After a start every journey is visited once; from
//! then on only journeys that were touched (a mutation named them) or whose next time-based
//! work is due, so a tick costs O(journeys with work), not O(journeys): an engine with 10,000
//! quiet journeys does nothing between their wake times. In memory only: a restart visits
//! every journey again, and the store stays the only source of truth.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::clock::Millis;

/// The longest the scheduler leaves a journey unvisited without being told about a change:
/// a safety net, so a wake-up the bookkeeping missed costs at most this delay.
pub const MAX_QUIET_MS: Millis = 60_000;

#[derive(Default)]
pub struct Wakes {
    /// Every journey was listed from the store since this process started.
    listed: bool,
    ids: HashMap<Arc<str>, i64>,
    touched: HashSet<Arc<str>>,
    quiet_until: HashMap<Arc<str>, Millis>,
    /// `(wake time, key)` of every quiet journey, earliest first.
    queue: BTreeSet<(Millis, Arc<str>)>,
}

/// What a tick should visit: journeys with a known id, and keys whose id must be looked up.
pub struct Visits {
    pub known: Vec<(i64, Arc<str>)>,
    pub unknown: Vec<Arc<str>>,
}

impl Wakes {
    fn key(&self, key: &str) -> Arc<str> {
        self.ids
            .get_key_value(key)
            .map_or_else(|| Arc::from(key), |(k, _)| k.clone())
    }

    fn unqueue(&mut self, key: &str) {
        if let Some(t) = self.quiet_until.remove(key) {
            let k = self.key(key);
            self.queue.remove(&(t, k));
        }
    }

    /// A mutation changed the journey: visit it at the next tick.
    pub fn touch(&mut self, key: &str) {
        self.unqueue(key);
        let k = self.key(key);
        self.touched.insert(k);
    }

    /// The journey is gone from the store.
    pub fn forget(&mut self, key: &str) {
        self.unqueue(key);
        self.touched.remove(key);
        self.ids.remove(key);
    }

    /// `None` until every journey was listed once ([`Wakes::listed`]); then the touched
    /// journeys and the quiet ones whose wake time is `<= now`.
    pub fn due(&mut self, now: Millis) -> Option<Visits> {
        if !self.listed {
            return None;
        }
        let mut keys: Vec<Arc<str>> = self.touched.iter().cloned().collect();
        while let Some((t, _)) = self.queue.first()
            && *t <= now
        {
            if let Some((_, k)) = self.queue.pop_first() {
                self.quiet_until.remove(&k);
                if !self.touched.contains(&k) {
                    keys.push(k);
                }
            }
        }
        let mut visits = Visits {
            known: Vec::new(),
            unknown: Vec::new(),
        };
        for k in keys {
            match self.ids.get(&k) {
                Some(id) => visits.known.push((*id, k)),
                None => visits.unknown.push(k),
            }
        }
        visits.known.sort_unstable_by_key(|(id, _)| *id);
        Some(visits)
    }

    /// Every journey in the store, listed at the first tick.
    pub fn listed(&mut self, journeys: &[(i64, String)]) -> Vec<(i64, Arc<str>)> {
        self.listed = true;
        journeys
            .iter()
            .map(|(id, key)| {
                let k: Arc<str> = Arc::from(key.as_str());
                self.ids.insert(k.clone(), *id);
                (*id, k)
            })
            .collect()
    }

    /// The id of a touched journey created after the listing.
    pub fn learn(&mut self, key: &Arc<str>, id: i64) {
        self.ids.insert(key.clone(), id);
    }

    /// A visit begins: touches from here on call for another visit.
    pub fn begin(&mut self, key: &str) {
        self.unqueue(key);
        self.touched.remove(key);
    }

    /// After an idle visit: nothing to do before `until`, unless touched meanwhile.
    pub fn quiet(&mut self, key: &str, until: Millis) {
        if self.touched.contains(key) || !self.ids.contains_key(key) {
            return;
        }
        self.unqueue(key);
        let k = self.key(key);
        self.quiet_until.insert(k.clone(), until);
        self.queue.insert((until, k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Visits) -> Vec<&str> {
        v.known.iter().map(|(_, k)| k.as_ref()).collect()
    }

    #[test]
    fn only_touched_and_due_journeys_are_visited() {
        let mut w = Wakes::default();
        assert!(w.due(0).is_none(), "the first tick lists every journey");
        let all = w.listed(&[(1, "a/x".into()), (2, "a/y".into()), (3, "a/z".into())]);
        assert_eq!(all.len(), 3);
        for (_, k) in &all {
            w.begin(k);
        }
        w.quiet("a/x", 100);
        w.quiet("a/y", 50);
        w.quiet("a/z", 1_000);
        assert!(keys(&w.due(10).expect("listed")).is_empty());
        w.touch("a/z");
        assert_eq!(keys(&w.due(10).expect("listed")), vec!["a/z"]);
        w.begin("a/z");
        w.quiet("a/z", 1_000);
        assert_eq!(keys(&w.due(60).expect("listed")), vec!["a/y"]);
        w.begin("a/y");
        // Touched during its visit: no quiet period, visited again.
        w.touch("a/y");
        w.quiet("a/y", 500);
        assert_eq!(keys(&w.due(70).expect("listed")), vec!["a/y"]);
    }

    #[test]
    fn new_journeys_are_looked_up_and_deleted_ones_forgotten() {
        let mut w = Wakes::default();
        w.listed(&[]);
        w.touch("b/new");
        let v = w.due(0).expect("listed");
        assert_eq!(v.unknown.len(), 1);
        w.learn(&v.unknown[0], 7);
        w.begin("b/new");
        w.quiet("b/new", 10);
        w.forget("b/new");
        let v = w.due(100).expect("listed");
        assert!(v.known.is_empty() && v.unknown.is_empty());
        // A quiet period for a key the store does not know is not kept.
        w.quiet("b/gone", 10);
        assert!(w.due(100).expect("listed").known.is_empty());
    }
}
