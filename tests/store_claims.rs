//! Deduplication claims expire after a retention period, so a poll item
//! seen long ago counts as new again, while recent ones stay claimed.

use chrono::{Duration, Utc};
use tempfile::TempDir;
use tether::store::{SledStore, Store};

#[test]
fn old_poll_claims_expire() {
    let data = TempDir::new().expect("data directory");
    let store = SledStore::open(data.path()).expect("opening the store");

    assert!(store.claim_key("orders", "poll:1").expect("claim"));
    assert!(store.claim_key("orders", "poll:2").expect("claim"));
    assert!(store.claim_key("other", "poll:1").expect("claim"));
    assert!(
        !store.claim_key("orders", "poll:1").expect("claim"),
        "a claimed key stays claimed"
    );

    let none = store
        .expire_claims("orders", "poll:", Utc::now() - Duration::days(30))
        .expect("expire");
    assert_eq!(none, 0, "recent claims are kept");

    let all = store
        .expire_claims("orders", "poll:", Utc::now() + Duration::seconds(5))
        .expect("expire");
    assert_eq!(all, 2);
    assert!(
        store.claim_key("orders", "poll:1").expect("claim"),
        "an expired key can be claimed again"
    );
    assert!(
        !store.claim_key("other", "poll:1").expect("claim"),
        "other workflows keep their claims"
    );
}
