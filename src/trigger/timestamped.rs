//! Timestamped webhook signatures in the form Stripe uses: one header
//! `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, where each `v1` is a hex
//! HMAC-SHA256 of `<t>.<raw body>`. Several `v1` values appear while a
//! secret is being rotated, and any one matching is enough. The time bound
//! keeps a captured request from being replayed later.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::workflow::model::TimestampedVerify;

type HmacSha256 = Hmac<Sha256>;

/// Checks the header against the body and the current time `now`. The
/// error names what is wrong without revealing the expected value.
pub fn verify_timestamped(
    verify: &TimestampedVerify,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let Some(header) = headers.get(verify.header.as_str()) else {
        return Err(format!("missing signature header `{}`", verify.header));
    };
    let text = header
        .to_str()
        .map_err(|_| format!("signature header `{}` is not text", verify.header))?;
    let (timestamp, signatures) = parse_header(text)
        .ok_or_else(|| format!("signature header `{}` has no valid `t=`", verify.header))?;
    if signatures.is_empty() {
        return Err(format!("signature header `{}` has no `v1=`", verify.header));
    }

    let age = now.timestamp().abs_diff(timestamp);
    if age > verify.tolerance.as_secs() {
        return Err(format!(
            "signature timestamp {timestamp} is {age} s away from now, more than the tolerance of {} s",
            verify.tolerance.as_secs()
        ));
    }

    let mut mac = HmacSha256::new_from_slice(verify.secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = signatures
        .iter()
        .filter_map(|signature| hex::decode(signature).ok())
        .any(|given| mac.clone().verify_slice(&given).is_ok());
    if matched {
        Ok(())
    } else {
        Err("no `v1` signature matches the body".to_string())
    }
}

/// Splits `t=...,v1=...,v1=...` into the timestamp and the `v1` values.
/// Other schemes such as `v0=` are ignored.
fn parse_header(text: &str) -> Option<(i64, Vec<&str>)> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in text.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name {
            "t" => timestamp = Some(value.parse::<i64>().ok()?),
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    Some((timestamp?, signatures))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRET: &str = "whsec_test_8c2d";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    /// 2026-11-01T05:30:05Z, the time every signature here is made at.
    const SIGNED_AT: i64 = 1_793_511_005;

    fn verify() -> TimestampedVerify {
        TimestampedVerify {
            header: "stripe-signature".into(),
            secret: SECRET.into(),
            tolerance: Duration::from_secs(300),
        }
    }

    fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("stripe-signature", value.parse().expect("ASCII header"));
        headers
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("valid timestamp")
    }

    #[test]
    fn matching_signature_accepted() {
        let header = format!("t={SIGNED_AT},v1={}", sign(SECRET, SIGNED_AT, BODY));
        let result = verify_timestamped(&verify(), &headers(&header), BODY, at(SIGNED_AT + 10));
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn any_of_several_signatures_accepted() {
        let old = sign("whsec_old", SIGNED_AT, BODY);
        let current = sign(SECRET, SIGNED_AT, BODY);
        let header = format!("t={SIGNED_AT},v1={old},v1={current},v0=ignored");
        let result = verify_timestamped(&verify(), &headers(&header), BODY, at(SIGNED_AT));
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn tolerance_edges_accepted() {
        let header = format!("t={SIGNED_AT},v1={}", sign(SECRET, SIGNED_AT, BODY));
        for now in [SIGNED_AT - 300, SIGNED_AT + 300] {
            let result = verify_timestamped(&verify(), &headers(&header), BODY, at(now));
            assert_eq!(result, Ok(()), "now = {now}");
        }
    }

    #[test]
    fn old_timestamp_rejected() {
        let header = format!("t={SIGNED_AT},v1={}", sign(SECRET, SIGNED_AT, BODY));
        let error = verify_timestamped(&verify(), &headers(&header), BODY, at(SIGNED_AT + 301))
            .expect_err("older than the tolerance");
        assert!(error.contains("301 s away"), "{error}");
    }

    #[test]
    fn future_timestamp_rejected() {
        let header = format!("t={SIGNED_AT},v1={}", sign(SECRET, SIGNED_AT, BODY));
        let error = verify_timestamped(&verify(), &headers(&header), BODY, at(SIGNED_AT - 301))
            .expect_err("further ahead than the tolerance");
        assert!(error.contains("301 s away"), "{error}");
    }

    #[test]
    fn changed_timestamp_rejected() {
        let signature = sign(SECRET, SIGNED_AT, BODY);
        let header = format!("t={},v1={signature}", SIGNED_AT + 1);
        let error = verify_timestamped(&verify(), &headers(&header), BODY, at(SIGNED_AT))
            .expect_err("the timestamp is part of the signed text");
        assert!(error.contains("no `v1` signature matches"), "{error}");
    }

    #[test]
    fn changed_body_rejected() {
        let header = format!("t={SIGNED_AT},v1={}", sign(SECRET, SIGNED_AT, BODY));
        let error = verify_timestamped(&verify(), &headers(&header), b"{}", at(SIGNED_AT))
            .expect_err("a different body");
        assert!(error.contains("no `v1` signature matches"), "{error}");
    }

    #[test]
    fn header_without_parts_rejected() {
        let cases = [
            ("v1=abcd", "no valid `t=`"),
            ("t=soon,v1=abcd", "no valid `t=`"),
            ("t=1793511005", "no `v1=`"),
        ];
        for (header, expected) in cases {
            let error = verify_timestamped(&verify(), &headers(header), BODY, at(SIGNED_AT))
                .expect_err("an incomplete header");
            assert!(error.contains(expected), "{header}: {error}");
        }
    }

    #[test]
    fn missing_header_rejected() {
        let error = verify_timestamped(&verify(), &HeaderMap::new(), BODY, at(SIGNED_AT))
            .expect_err("no header");
        assert!(error.contains("missing signature header"), "{error}");
    }
}
