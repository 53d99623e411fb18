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
    for (name, value) in trigger.headers.iter_mut() {
        *value = if SENSITIVE_HEADERS.contains(&name.as_str()) {
            Value::String(MASK.to_string())
        } else {
            redactor.value(value)
        };
    }
    trigger.body = redactor.value(&trigger.body);
    trigger.raw = trigger.raw.as_deref().map(|raw| redactor.text(raw));
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
    fn longer_secret_masked_whole() {
        let redactor = Redactor::new(["abc".to_string(), "abcdef".to_string()]);
        assert_eq!(redactor.text("key=abcdef"), "key=[redacted]");
    }
}
