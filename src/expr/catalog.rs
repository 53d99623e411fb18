//! Functions for product catalog data in scripts.
//!
//! - `gtin_valid(code)` is true when `code` is a string of 8, 12, 13 or 14 ASCII digits (GTIN-8,
//!   UPC-A as GTIN-12, EAN-13 as GTIN-13, GTIN-14) whose last digit is the GS1 mod-10 check
//!   digit of the others. Any other value, such as `()`, a number or a code with spaces, is
//!   false, so a script trims or strips separators first.
//! - `collapse_whitespace(text)` trims `text` and replaces every run of Unicode whitespace
//!   inside it with one space.
//! - `warn(message)` logs `message` at warning level (target `tether::script`) and returns it,
//!   for problems an operator should see in the log as well as in a step's output.

use rhai::{Dynamic, Engine, ImmutableString};

/// Lengths of the GTIN formats GS1 defines.
const GTIN_LENGTHS: [usize; 4] = [8, 12, 13, 14];

/// Registers `gtin_valid`, `collapse_whitespace` and `warn`.
pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("gtin_valid", |code: Dynamic| match code.into_string() {
        Ok(text) => gtin_valid(&text),
        Err(_) => false,
    });
    engine.register_fn("collapse_whitespace", |text: ImmutableString| {
        collapse_whitespace(&text)
    });
    engine.register_fn("warn", |message: Dynamic| {
        let text = message.to_string();
        tracing::warn!(target: "tether::script", "{text}");
        text
    });
}

/// Checks the length, the digits and the GS1 check digit of a GTIN.
///
/// GS1 weights the digits before the check digit 3, 1, 3, ... from the right, and the check
/// digit brings the weighted sum up to a multiple of ten.
pub fn gtin_valid(code: &str) -> bool {
    let bytes = code.as_bytes();
    if !GTIN_LENGTHS.contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let (check, body) = bytes.split_last().expect("a GTIN has at least 8 digits");
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let weight = if position % 2 == 0 { 3 } else { 1 };
            weight * u32::from(digit - b'0')
        })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check - b'0')
}

/// Trims `text` and joins its words with single spaces.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
