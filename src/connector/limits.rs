//! Per-connector limits shared by every run: a token bucket for the
//! request rate and a semaphore for calls in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::model::{Connector, RateLimit};

#[derive(Default)]
pub(crate) struct Limits {
    buckets: Mutex<HashMap<String, Bucket>>,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Limits {
    /// Waits until the connector may send one more request. The permit, if
    /// any, holds a concurrency slot until dropped.
    pub(crate) async fn acquire(&self, connector: &Connector) -> Option<OwnedSemaphorePermit> {
        let permit = match connector.concurrency {
            None => None,
            Some(limit) => {
                let semaphore = {
                    let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                    Arc::clone(
                        map.entry(connector.name.clone())
                            .or_insert_with(|| Arc::new(Semaphore::new(limit))),
                    )
                };
                semaphore.acquire_owned().await.ok()
            }
        };
        if let Some(rate) = &connector.rate_limit {
            while let Some(wait) = self.take_token(&connector.name, rate) {
                tokio::time::sleep(wait).await;
            }
        }
        permit
    }

    /// Lowers the connector's bucket to what the API reports left, from a
    /// `used/limit` usage header such as `32/40`. A value that does not
    /// parse changes nothing.
    pub(crate) fn observe_usage(&self, connector: &Connector, reported: &str) {
        let Some(rate) = &connector.rate_limit else {
            return;
        };
        let Some((used, limit)) = reported.split_once('/') else {
            return;
        };
        let (Ok(used), Ok(limit)) = (used.trim().parse::<f64>(), limit.trim().parse::<f64>())
        else {
            return;
        };
        if limit <= 0.0 {
            return;
        }
        let capacity = f64::from(rate.requests);
        let left = ((limit - used) / limit).clamp(0.0, 1.0) * capacity;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry(connector.name.clone())
            .or_insert_with(|| Bucket {
                tokens: capacity,
                refilled: Instant::now(),
            });
        if left < bucket.tokens {
            tracing::debug!(connector = %connector.name, reported, "the API reports fewer requests left; slowing down");
            bucket.tokens = left;
        }
    }

    /// Takes a token, or returns how long until one is available.
    fn take_token(&self, name: &str, rate: &RateLimit) -> Option<Duration> {
        let per_second = f64::from(rate.requests) / rate.per.as_secs_f64();
        let capacity = f64::from(rate.requests);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(name.to_string()).or_insert_with(|| Bucket {
            tokens: capacity,
            refilled: Instant::now(),
        });
        let now = Instant::now();
        let earned = now.duration_since(bucket.refilled).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + earned).min(capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
    }
}
