//! The stored form of a trigger event: JSON, without the parsed `body` when
//! its `body_from_raw` is set, because parsing `raw` again gives the same
//! value. A webhook's body would otherwise be stored twice. sled 0.34 also
//! writes a leaf's values to its log again each time the leaf splits
//! (`Tree::split_node`), so every byte saved counts several times on the
//! ingest path. Events stored with both read back as they were.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::run::{BodyEncoding, TriggerEvent, TriggerKind};
use chrono::{DateTime, Utc};

/// The stored form of an event, borrowing its fields.
#[derive(Serialize)]
struct Stored<'a> {
    kind: TriggerKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_from_raw: Option<BodyEncoding>,
    headers: &'a Map<String, Value>,
    query: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dedup_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a Value>,
    received_at: DateTime<Utc>,
}

/// Encodes `event` for the `triggers` tree.
pub(super) fn encode(event: &TriggerEvent) -> serde_json::Result<Vec<u8>> {
    // Listing every field makes a new one a compile error here until it is
    // stored too.
    let TriggerEvent {
        kind,
        body,
        raw,
        body_from_raw,
        headers,
        query,
        dedup_key,
        scheduled_at,
        item,
        received_at,
    } = event;
    let from_raw = body_from_raw.filter(|_| raw.is_some());
    serde_json::to_vec(&Stored {
        kind: *kind,
        body: from_raw.is_none().then_some(body),
        raw: raw.as_deref(),
        body_from_raw: from_raw,
        headers,
        query,
        dedup_key: dedup_key.as_deref(),
        scheduled_at: *scheduled_at,
        item: item.as_ref(),
        received_at: *received_at,
    })
}

/// Decodes an event [`encode`] stored, parsing its body again where only
/// the text was kept.
pub(super) fn decode(bytes: &[u8]) -> serde_json::Result<TriggerEvent> {
    let mut event: TriggerEvent = serde_json::from_slice(bytes)?;
    if let (Some(encoding), Some(raw)) = (event.body_from_raw, &event.raw) {
        event.body = encoding.parse(raw)?;
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn webhook(raw: &str, body_from_raw: Option<BodyEncoding>) -> TriggerEvent {
        let mut headers = Map::new();
        headers.insert("content-type".into(), json!("application/json"));
        TriggerEvent {
            kind: TriggerKind::Webhook,
            body: serde_json::from_str(raw).unwrap_or_else(|_| json!(raw)),
            raw: Some(raw.to_string()),
            body_from_raw,
            headers,
            dedup_key: Some("delivery-1".into()),
            ..TriggerEvent::default()
        }
    }

    #[test]
    fn body_parsed_from_text_is_stored_once() {
        let event = webhook(
            r#"{"order_id":1001,"email":"ana@example.com"}"#,
            Some(BodyEncoding::Json),
        );
        let bytes = encode(&event).expect("encodes");
        let stored: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert!(stored.get("body").is_none(), "{stored}");
        assert_eq!(stored["body_from_raw"], "json");

        let read = decode(&bytes).expect("decodes");
        assert_eq!(read.body, event.body);
        assert_eq!(read.raw, event.raw);
        assert_eq!(read.headers, event.headers);
        assert_eq!(read.dedup_key, event.dedup_key);
        assert_eq!(read.received_at, event.received_at);
    }

    #[test]
    fn text_body_read_back() {
        let event = webhook("order 1001 paid", Some(BodyEncoding::Text));
        let read = decode(&encode(&event).expect("encodes")).expect("decodes");
        assert_eq!(read.body, json!("order 1001 paid"));
    }

    #[test]
    fn body_kept_when_not_from_text() {
        let mut event = webhook(r#"{"a":1}"#, None);
        event.body = json!({"a": "[redacted]"});
        let bytes = encode(&event).expect("encodes");
        let read = decode(&bytes).expect("decodes");
        assert_eq!(read.body, json!({"a": "[redacted]"}));
        assert_eq!(read.body_from_raw, None);
    }

    #[test]
    fn event_stored_with_its_body_reads_back() {
        // The form of every event stored before bodies were stored once.
        let bytes = br#"{"kind":"webhook","body":{"a":1},"raw":"{\"a\":1}","headers":{},"query":{},"received_at":"2026-12-01T10:00:00Z"}"#;
        let read = decode(bytes).expect("decodes");
        assert_eq!(read.body, json!({"a": 1}));
        assert_eq!(read.raw.as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn text_that_no_longer_parses_is_an_error() {
        let bytes = br#"{"kind":"webhook","raw":"{not json","body_from_raw":"json","headers":{},"query":{},"received_at":"2026-12-01T10:00:00Z"}"#;
        assert!(decode(bytes).is_err());
    }
}
