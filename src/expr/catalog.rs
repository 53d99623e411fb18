//! Functions for product catalog data in scripts.
//!
//! - `gtin_valid(code)` is true when `code` is a string of 8, 12, 13 or 14 ASCII digits (GTIN-8,
//!   UPC-A as GTIN-12, EAN-13 as GTIN-13, GTIN-14) whose last digit is the GS1 mod-10 check
//!   digit of the others. Any other value, such as `()`, a number or a code with spaces, is
//!   false, so a script trims or strips separators first.
//! - `collapse_whitespace(text)` trims `text` and replaces every run of Unicode whitespace
//!   inside it with one space.
//! - `plain_text(text)` turns an HTML fragment such as a supplier's product name into one line
//!   of plain text. Tags are removed, and `<br>`, `<p>`, `<div>` and `<li>` become spaces. The
//!   entities `&amp; &lt; &gt; &quot; &#39; &apos; &nbsp;` and numeric `&#NN;`/`&#xHH;` are
//!   decoded, zero-width characters are dropped and whitespace is collapsed.
//! - `warn(message)` logs `message` at warning level (target `tether::script`) and returns it,
//!   for problems an operator should see in the log as well as in a step's output.

use rhai::{Dynamic, Engine, ImmutableString};

/// Lengths of the GTIN formats GS1 defines.
const GTIN_LENGTHS: [usize; 4] = [8, 12, 13, 14];

/// Registers `gtin_valid`, `collapse_whitespace`, `plain_text` and `warn`.
pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("gtin_valid", |code: Dynamic| match code.into_string() {
        Ok(text) => gtin_valid(&text),
        Err(_) => false,
    });
    engine.register_fn("collapse_whitespace", |text: ImmutableString| {
        collapse_whitespace(&text)
    });
    engine.register_fn("plain_text", |text: ImmutableString| plain_text(&text));
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

/// Tags whose end separates words, so `a<br>b` reads "a b" but `<b>Super</b>lamp` "Superlamp".
const BREAKING_TAGS: [&str; 6] = ["br", "p", "div", "li", "tr", "td"];

/// Characters that take no space: zero-width space, non-joiner and joiner, word joiner and the
/// byte order mark.
const ZERO_WIDTH: [char; 5] = ['\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}'];

/// Converts an HTML fragment to one line of plain text.
pub fn plain_text(text: &str) -> String {
    let without_tags = strip_tags(text);
    let decoded = decode_entities(&without_tags);
    let visible: String = decoded
        .chars()
        .filter(|character| !ZERO_WIDTH.contains(character))
        .collect();
    collapse_whitespace(&visible)
}

/// Removes tags: a `<` followed by a letter, `/` or `!`, up to the next `>`. Any other `<`, as
/// in "size < 5 cm", is text.
fn strip_tags(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        output.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let starts_tag = after
            .chars()
            .next()
            .is_some_and(|next| next.is_ascii_alphabetic() || next == '/' || next == '!');
        match after.find('>') {
            Some(end) if starts_tag => {
                let name: String = after[..end]
                    .trim_start_matches('/')
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_ascii_lowercase();
                if BREAKING_TAGS.contains(&name.as_str()) {
                    output.push(' ');
                }
                rest = &after[end + 1..];
            }
            _ => {
                output.push('<');
                rest = after;
            }
        }
    }
    output.push_str(rest);
    output
}

/// Decodes the named entities that supplier titles use and numeric character references, in
/// one pass so "&amp;lt;" becomes "&lt;", not "<". An unknown entity stays as it is.
fn decode_entities(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        output.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let decoded = after
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| Some((decode_entity(&after[..end])?, end)));
        match decoded {
            Some((character, end)) => {
                output.push(character);
                rest = &after[end + 1..];
            }
            None => {
                output.push('&');
                rest = after;
            }
        }
    }
    output.push_str(rest);
    output
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}
