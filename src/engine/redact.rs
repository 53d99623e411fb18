//! Masks secret values wherever runs are stored, logged or shown.

use serde_json::Value;

const MASK: &str = "[redacted]";

/// Header names whose values are always masked in stored trigger events.
pub const SENSITIVE_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Secret values, longest first so a secret that contains another is
    /// masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn text(&self, text: &str) -> String {
        let mut masked = text.to_string();
        for secret in &self.secrets {
            if masked.contains(secret.as_str()) {
                masked = masked.replace(secret.as_str(), MASK);
            }
        }
        masked
    }

    /// Whether the text contains a secret value.
    fn finds_secret(&self, text: &str) -> bool {
        self.secrets
            .iter()
            .any(|secret| text.contains(secret.as_str()))
    }

    /// Returns whether a string or key anywhere in a JSON value contains a
    /// secret value.
    fn finds_secret_in(&self, value: &Value) -> bool {
        if self.secrets.is_empty() {
            return false;
        }
        match value {
            Value::String(text) => self.finds_secret(text),
            Value::Array(items) => items.iter().any(|item| self.finds_secret_in(item)),
            Value::Object(fields) => fields
                .iter()
                .any(|(key, field)| self.finds_secret(key) || self.finds_secret_in(field)),
            _ => false,
        }
    }

    /// Masks secrets in every string of a JSON value in place, keys included.
    pub fn mask(&self, value: &mut Value) {
        if self.secrets.is_empty() {
            return;
        }
        match value {
            Value::String(text) if self.finds_secret(text) => *text = self.text(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.mask(item)),
            Value::Object(fields) => {
                if fields.keys().any(|key| self.finds_secret(key)) {
                    let masked = fields
                        .iter()
                        .map(|(key, field)| (self.text(key), self.value(field)))
                        .collect();
                    *fields = masked;
                } else {
                    fields.values_mut().for_each(|field| self.mask(field));
                }
            }
            _ => {}
        }
    }

    /// Masks secrets in every string of a JSON value, keys included.
    pub fn value(&self, value: &Value) -> Value {
        if self.secrets.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(text) => Value::String(self.text(text)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Masks secrets and sensitive headers of a trigger event before it is
/// stored. The raw body is kept as received, because signatures are checked
/// over it; secrets are masked in it only when they appear literally.
pub fn mask_trigger(redactor: &Redactor, trigger: &mut super::run::TriggerEvent) {
    // Masking can change the body and the text differently, so then both
    // are stored.
    let secret_in_body = trigger
        .raw
        .as_deref()
        .is_some_and(|raw| redactor.finds_secret(raw))
        || redactor.finds_secret_in(&trigger.body);
    if secret_in_body {
        trigger.body_from_raw = None;
    }
    for (name, value) in trigger.headers.iter_mut() {
        if SENSITIVE_HEADERS.contains(&name.as_str()) {
            *value = Value::String(MASK.to_string());
        } else {
            redactor.mask(value);
        }
    }
    redactor.mask(&mut trigger.body);
    if let Some(raw) = trigger.raw.as_mut()
        && redactor.finds_secret(raw)
    {
        *raw = redactor.text(raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets_in_nested_values() {
        let redactor = Redactor::new(["tok_123".to_string()]);
        let value = serde_json::json!({"auth": "Bearer tok_123", "list": ["x tok_123 y", 5]});
        let masked = redactor.value(&value);
        assert_eq!(masked["auth"], "Bearer [redacted]");
        assert_eq!(masked["list"][0], "x [redacted] y");
        assert_eq!(masked["list"][1], 5);
    }

    #[test]
    fn mask_in_place_matches_value() {
        let redactor = Redactor::new(["tok_123".to_string()]);
        let mut value = serde_json::json!({"a": ["tok_123!"], "tok_123": 1, "b": {"c": "x"}});
        let expected = redactor.value(&value);
        redactor.mask(&mut value);
        assert_eq!(value, expected);
        assert_eq!(value["a"][0], "[redacted]!");
        assert!(value.get("[redacted]").is_some());
    }

    #[test]
    fn masked_body_is_stored_apart_from_its_text() {
        use crate::engine::run::{BodyEncoding, TriggerEvent};
        let redactor = Redactor::new(["tok_123".to_string()]);
        let event = |raw: &str| TriggerEvent {
            body: serde_json::from_str(raw).expect("valid JSON"),
            raw: Some(raw.to_string()),
            body_from_raw: Some(BodyEncoding::Json),
            ..TriggerEvent::default()
        };
        // Only the parsed string contains the secret, so only it is masked.
        let mut escaped = event(r#"{"token":"tok\u005f123"}"#);
        mask_trigger(&redactor, &mut escaped);
        assert_eq!(escaped.body["token"], "[redacted]");
        assert_eq!(escaped.body_from_raw, None);

        // A secret inside a number is masked in the text alone, which then
        // no longer parses as the body.
        let digits = Redactor::new(["123".to_string()]);
        let mut number = event(r#"{"n":91234}"#);
        mask_trigger(&digits, &mut number);
        assert_eq!(number.raw.as_deref(), Some(r#"{"n":9[redacted]4}"#));
        assert_eq!(number.body, serde_json::json!({"n": 91234}));
        assert_eq!(number.body_from_raw, None);

        let mut plain = event(r#"{"token":"none here"}"#);
        mask_trigger(&redactor, &mut plain);
        assert_eq!(plain.body_from_raw, Some(BodyEncoding::Json));
    }

    #[test]
    fn longer_secret_masked_whole() {
        let redactor = Redactor::new(["abc".to_string(), "abcdef".to_string()]);
        assert_eq!(redactor.text("key=abcdef"), "key=[redacted]");
    }
}
