//! Validates a webhook trigger: the path, the signature check, the body
//! limit and when the request gets its response.

use serde_json::Value;

use super::checker::Checker;
use super::de::Spanned;
use super::model::{
    DEFAULT_MAX_BODY, DEFAULT_RESPOND_TIMEOUT, DEFAULT_SIGNATURE_TOLERANCE, HmacVerify, Ping,
    Respond, SignatureEncoding, TimestampedVerify, Verify, WebhookTrigger,
};
use super::raw::{RawEncoding, RawPing, RawRespond, RawVerify, RawWebhook};

pub(super) fn validate_webhook(
    raw: &RawWebhook,
    checker: &mut Checker<'_>,
) -> Option<WebhookTrigger> {
    let path = &raw.path;
    let path_ok = path.value.starts_with("/hooks/")
        && path.value.len() > "/hooks/".len()
        && !path.value.contains(['?', '#', ' ']);
    if !path_ok {
        let message = format!(
            "invalid webhook path `{}`; it must start with `/hooks/`, such as `/hooks/shop/orders`",
            path.value
        );
        checker.error(path.mark, &path.path, message);
    }

    let verify = raw
        .verify
        .as_ref()
        .and_then(|verify| validate_verify(verify, checker));
    let max_body = match &raw.max_body {
        None => DEFAULT_MAX_BODY,
        Some(size) => parse_size(size, checker)?,
    };

    let respond = validate_respond(raw, checker);

    if !path_ok {
        return None;
    }
    Some(WebhookTrigger {
        path: path.value.clone(),
        verify,
        dedup_header: raw
            .dedup_header
            .as_ref()
            .map(|h| h.value.to_ascii_lowercase()),
        max_body,
        respond,
        ping: raw.ping.map(|ping| match ping {
            RawPing::Woocommerce => Ping::WooCommerce,
        }),
    })
}

/// Reads a size: a number of bytes, or text such as `512KiB` or `10MiB`.
fn parse_size(size: &Spanned<Value>, checker: &mut Checker<'_>) -> Option<usize> {
    let parsed = match &size.value {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (digits, unit) = text.split_at(split);
            let factor = match unit.trim() {
                "" | "B" => Some(1),
                "KiB" | "KB" | "K" => Some(1024),
                "MiB" | "MB" | "M" => Some(1024 * 1024),
                _ => None,
            };
            digits.parse::<usize>().ok().zip(factor).map(|(n, f)| n * f)
        }
        _ => None,
    };
    if parsed.is_none() {
        let message = format!(
            "invalid size `{}`; write a number of bytes or a value such as `512KiB` or `10MiB`",
            size.value
        );
        checker.error(size.mark, &size.path, message);
    }
    parsed
}

fn validate_verify(raw: &RawVerify, checker: &mut Checker<'_>) -> Option<Verify> {
    match raw {
        RawVerify::HmacSha256(hmac) => {
            let secret = signing_secret(&hmac.secret, checker)?;
            Some(Verify::Hmac(HmacVerify {
                header: hmac.header.value.to_ascii_lowercase(),
                secret,
                encoding: match hmac.encoding {
                    Some(RawEncoding::Hex) => SignatureEncoding::Hex,
                    Some(RawEncoding::Base64) | None => SignatureEncoding::Base64,
                },
                prefix: hmac.prefix.clone(),
            }))
        }
        RawVerify::TimestampedHmacSha256(timestamped) => {
            let tolerance = match &timestamped.tolerance {
                Some(text) => checker.duration(text)?,
                None => DEFAULT_SIGNATURE_TOLERANCE,
            };
            let secret = signing_secret(&timestamped.secret, checker)?;
            Some(Verify::Timestamped(TimestampedVerify {
                header: timestamped.header.value.to_ascii_lowercase(),
                secret,
                tolerance,
            }))
        }
    }
}

fn signing_secret(text: &Spanned<String>, checker: &mut Checker<'_>) -> Option<String> {
    let secret = checker.render_with_secrets(text)?;
    if secret.is_empty() {
        checker.error(text.mark, &text.path, "the signing secret is empty");
        return None;
    }
    Some(secret)
}

fn validate_respond(raw: &RawWebhook, checker: &mut Checker<'_>) -> Respond {
    let timeout = raw
        .respond_timeout
        .as_ref()
        .and_then(|text| checker.duration(text));
    match raw.respond {
        Some(RawRespond::Sync) => Respond::Sync(timeout.unwrap_or(DEFAULT_RESPOND_TIMEOUT)),
        Some(RawRespond::Accepted) | None => {
            if let Some(text) = &raw.respond_timeout {
                let message = "respond_timeout has no effect without `respond: sync`; set `respond: sync` or remove respond_timeout";
                checker.error(text.mark, &text.path, message);
            }
            Respond::Accepted
        }
    }
}
