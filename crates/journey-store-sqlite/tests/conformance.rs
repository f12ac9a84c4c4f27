//! The SQLite store passes the conformance suite every backend runs, and keeps what it wrote
//! across a reopen without migrating again.

use journey_store::Store;
use journey_store_sqlite::SqliteStore;

#[test]
fn sqlite_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open(dir.path().join("a.db")).expect("open");
    journey_store_conformance::run_all(&s);
    assert_eq!(s.schema_version().expect("schema"), 7);
    // reopen: migrations are not re-applied, data persists
    drop(s);
    let s = SqliteStore::open(dir.path().join("a.db")).expect("reopen");
    let n: journey_store::Result<i64> = s.read(|tx| tx.count_deliveries(1));
    assert_eq!(n.expect("read"), 3);
}
