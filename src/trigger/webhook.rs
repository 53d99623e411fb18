//! Webhook requests: signature checks over the raw body, and turning the
//! request into the trigger event a run starts from.

use axum::http::HeaderMap;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::engine::run::{BodyEncoding, TriggerEvent, TriggerKind};
use crate::trigger::timestamped::verify_timestamped;
use crate::workflow::model::{HmacVerify, SignatureEncoding, Verify, WebhookTrigger};

type HmacSha256 = Hmac<Sha256>;

/// Checks the request against the workflow's `verify` scheme; `now` is the
/// current time, which timestamped schemes compare against.
pub fn verify_request(
    verify: &Verify,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), String> {
    match verify {
        Verify::Hmac(hmac) => verify_signature(hmac, headers, body),
        Verify::Timestamped(timestamped) => verify_timestamped(timestamped, headers, body, now),
    }
}

/// Checks the request's signature header against an HMAC-SHA256 of the raw
/// body. The comparison runs in constant time. The error names what is
/// wrong without revealing the expected value.
pub fn verify_signature(
    verify: &HmacVerify,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let Some(header) = headers.get(verify.header.as_str()) else {
        return Err(format!("missing signature header `{}`", verify.header));
    };
    let text = header
        .to_str()
        .map_err(|_| format!("signature header `{}` is not text", verify.header))?
        .trim();
    let text = match &verify.prefix {
        Some(prefix) => text.strip_prefix(prefix.as_str()).ok_or_else(|| {
            format!(
                "signature header `{}` does not start with `{prefix}`",
                verify.header
            )
        })?,
        None => text,
    };
    let given = match verify.encoding {
        SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        SignatureEncoding::Hex => hex::decode(text).ok(),
    }
    .ok_or_else(|| {
        format!(
            "signature header `{}` is not valid {:?}",
            verify.header, verify.encoding
        )
    })?;

    let mut mac = HmacSha256::new_from_slice(verify.secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| "signature does not match the body".to_string())
}

/// Builds the trigger event of a verified request.
pub fn event_from_request(
    trigger: &WebhookTrigger,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<TriggerEvent, String> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (parsed, body_from_raw) = parse_body(&content_type, body)?;

    let mut header_map = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        header_map.insert(name.as_str().to_string(), Value::String(value));
    }
    let query_map = query.map(parse_form).unwrap_or_default();
    let dedup_key = trigger
        .dedup_header
        .as_ref()
        .and_then(|name| headers.get(name.as_str()))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());

    Ok(TriggerEvent {
        kind: TriggerKind::Webhook,
        body: parsed,
        raw: Some(String::from_utf8_lossy(body).into_owned()),
        body_from_raw,
        headers: header_map,
        query: query_map,
        dedup_key,
        scheduled_at: None,
        item: None,
        received_at: Utc::now(),
    })
}

/// JSON for JSON content types (and for bodies without one that parse as
/// JSON), a map for form-encoded bodies, text otherwise. Also returns how
/// the body can be parsed again from its text, for bodies the store then
/// keeps as text alone.
fn parse_body(content_type: &str, body: &[u8]) -> Result<(Value, Option<BodyEncoding>), String> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    // A search for a string that the text spells with escapes, such as
    // `\u00e9`, would not find it in the text, so such a body is stored
    // parsed too. Form bodies likewise.
    let json_from_raw = (!body.contains(&b'\\')).then_some(BodyEncoding::Json);
    if media == "application/json" || media.ends_with("+json") {
        let value = serde_json::from_slice(body)
            .map_err(|error| format!("body is not valid JSON: {error}"))?;
        return Ok((value, json_from_raw));
    }
    if media == "application/x-www-form-urlencoded" {
        let text = std::str::from_utf8(body).map_err(|_| "form body is not UTF-8".to_string())?;
        return Ok((Value::Object(parse_form(text)), None));
    }
    if body.is_empty() {
        return Ok((Value::Null, None));
    }
    if media.is_empty()
        && let Ok(value) = serde_json::from_slice(body)
    {
        return Ok((value, json_from_raw));
    }
    let text = String::from_utf8_lossy(body).into_owned();
    Ok((Value::String(text), Some(BodyEncoding::Text)))
}

/// Parses `a=1&b=2`; a repeated name keeps its values as a list.
fn parse_form(text: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (name, value) in form_urlencoded::parse(text.as_bytes()) {
        let value = Value::String(value.into_owned());
        match map.get_mut(name.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                map.insert(name.into_owned(), value);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shopify_verify(secret: &str) -> HmacVerify {
        HmacVerify {
            header: "x-shopify-hmac-sha256".into(),
            secret: secret.into(),
            encoding: SignatureEncoding::Base64,
            prefix: None,
        }
    }

    fn sign_base64(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn base64_signature_accepted() {
        let body = br#"{"id":1}"#;
        let mut headers = HeaderMap::new();
        let signature = sign_base64("s3cret", body);
        headers.insert(
            "x-shopify-hmac-sha256",
            signature.parse().expect("base64 is a valid header"),
        );
        assert_eq!(
            verify_signature(&shopify_verify("s3cret"), &headers, body),
            Ok(())
        );
    }

    #[test]
    fn wrong_secret_rejected() {
        let body = br#"{"id":1}"#;
        let mut headers = HeaderMap::new();
        let signature = sign_base64("other", body);
        headers.insert(
            "x-shopify-hmac-sha256",
            signature.parse().expect("base64 is a valid header"),
        );
        let error =
            verify_signature(&shopify_verify("s3cret"), &headers, body).expect_err("must fail");
        assert!(error.contains("does not match"), "{error}");
    }

    #[test]
    fn hex_with_prefix_accepted() {
        let body = b"payload";
        let mut mac = HmacSha256::new_from_slice(b"k").expect("any key length");
        mac.update(body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            signature.parse().expect("hex is a valid header"),
        );
        let verify = HmacVerify {
            header: "x-hub-signature-256".into(),
            secret: "k".into(),
            encoding: SignatureEncoding::Hex,
            prefix: Some("sha256=".into()),
        };
        assert_eq!(verify_signature(&verify, &headers, body), Ok(()));
    }

    #[test]
    fn missing_header_rejected() {
        let error =
            verify_signature(&shopify_verify("s"), &HeaderMap::new(), b"x").expect_err("must fail");
        assert!(error.contains("missing signature header"), "{error}");
    }

    #[test]
    fn form_body_repeated_names_become_list() {
        let (parsed, from_raw) =
            parse_body("application/x-www-form-urlencoded", b"a=1&b=x+y&a=2").expect("valid form");
        assert_eq!(parsed, serde_json::json!({"a": ["1", "2"], "b": "x y"}));
        // A search for "x y" must find the stored event, so the parsed
        // form is stored too.
        assert_eq!(from_raw, None);
    }

    #[test]
    fn big_integer_body_kept_exact() {
        let (parsed, _) =
            parse_body("application/json", b"{\"id\":9007199254740993}").expect("valid JSON");
        assert_eq!(parsed["id"].to_string(), "9007199254740993");
    }

    #[test]
    fn body_parsed_again_from_text_is_equal() {
        let order = include_str!("../../tests/fixtures/shopify-orders-create.json");
        let bodies: [(&str, &str, Option<BodyEncoding>); 4] = [
            ("application/json", order, Some(BodyEncoding::Json)),
            ("", "[1, 2.50, {\"a\": null}]", Some(BodyEncoding::Json)),
            ("text/plain", "order 1001 paid", Some(BodyEncoding::Text)),
            ("", "not json {", Some(BodyEncoding::Text)),
        ];
        for (content_type, body, expected) in bodies {
            let (parsed, from_raw) = parse_body(content_type, body.as_bytes()).expect("valid body");
            assert_eq!(from_raw, expected, "{body}");
            let encoding = from_raw.expect("an encoding for every body here");
            let again = encoding.parse(body).expect("parses again");
            assert_eq!(again, parsed, "{body}");
        }
    }

    #[test]
    fn json_with_escapes_keeps_parsed_body() {
        let (parsed, from_raw) =
            parse_body("application/json", br#"{"name":"Caf\u00e9"}"#).expect("valid JSON");
        assert_eq!(parsed["name"], "Café");
        assert_eq!(from_raw, None);
    }
}
