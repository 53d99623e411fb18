//! Decimal money for scripts, built on Rhai's `decimal` feature (rust_decimal).
//!
//! `decimal(x)` accepts a string such as `"24.50"` (an optional sign, digits and one dot, nothing
//! else), an integer, a float or a decimal. A float
//! is converted through its shortest text form, so `1.19` becomes exactly `1.19`. The same
//! conversion lets `+ - * / %` and comparisons mix decimals with floats. Rhai already mixes
//! decimals with integers.
//!
//! Rounding: Rhai's own `round(places)` on a decimal rounds half to even (banker's rounding),
//! so `29.155` becomes `29.16` but `29.165` also becomes `29.16`. `round_money(places)` rounds
//! half away from zero, the usual rule for prices. Rhai also provides `floor`, `ceiling`,
//! `round_up`, `round_down`, `round_half_up` and `to_float` on decimals. `ceil_to(step)` and
//! `floor_to(step)` round to a multiple of a step, for example for charm prices like
//! `price.ceiling() - decimal("0.01")`.

use std::cmp::Ordering;
use std::str::FromStr;

use rhai::{Dynamic, Engine, EvalAltResult, FLOAT, INT, Position};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

type Arithmetic = fn(Decimal, Decimal) -> Option<Decimal>;

type OrderingTest = fn(Ordering) -> bool;

const ARITHMETIC: [(&str, Arithmetic); 5] = [
    ("+", Decimal::checked_add),
    ("-", Decimal::checked_sub),
    ("*", Decimal::checked_mul),
    ("/", Decimal::checked_div),
    ("%", Decimal::checked_rem),
];

const COMPARISONS: [(&str, OrderingTest); 6] = [
    ("==", Ordering::is_eq),
    ("!=", Ordering::is_ne),
    ("<", Ordering::is_lt),
    ("<=", Ordering::is_le),
    (">", Ordering::is_gt),
    (">=", Ordering::is_ge),
];

/// Registers `decimal`, `round_money`, `ceil_to`, `floor_to` and the operators between decimals
/// and floats.
pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("decimal", |value: Dynamic| to_decimal(&value));
    engine.register_fn("round_money", round_money);
    engine.register_fn("ceil_to", |value: Decimal, step: Dynamic| {
        round_to_step(value, &step, Decimal::ceil)
    });
    engine.register_fn("floor_to", |value: Decimal, step: Dynamic| {
        round_to_step(value, &step, Decimal::floor)
    });
    for (operator, apply) in ARITHMETIC {
        engine.register_fn(operator, move |left: Decimal, right: FLOAT| {
            calculate(operator, apply, left, float_to_decimal(right)?)
        });
        engine.register_fn(operator, move |left: FLOAT, right: Decimal| {
            calculate(operator, apply, float_to_decimal(left)?, right)
        });
    }
    for (operator, test) in COMPARISONS {
        // Only `!=` holds when the float is NaN.
        let unordered = operator == "!=";
        engine.register_fn(operator, move |left: Decimal, right: FLOAT| {
            compare(left, right).map_or(unordered, test)
        });
        engine.register_fn(operator, move |left: FLOAT, right: Decimal| {
            compare(right, left)
                .map(Ordering::reverse)
                .map_or(unordered, test)
        });
    }
}

/// Converts a string, integer, float or decimal to a decimal.
pub(super) fn to_decimal(value: &Dynamic) -> RhaiResult<Decimal> {
    if let Ok(decimal) = value.as_decimal() {
        Ok(decimal)
    } else if let Ok(integer) = value.as_int() {
        Ok(Decimal::from(integer))
    } else if let Ok(float) = value.as_float() {
        float_to_decimal(float)
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        parse_decimal(&text)
    } else {
        Err(arithmetic_error(format!(
            "decimal() expects a string, integer, float or decimal, not a value of type `{}`",
            value.type_name()
        )))
    }
}

/// Parses plain decimal text: an optional sign, digits and at most one dot (`"24.50"`,
/// `"-0.5"`, `".5"`). Money arrives as text from suppliers and configuration, so anything
/// else (exponents, underscores, spaces, thousands separators) is rejected, not guessed at.
fn parse_decimal(text: &str) -> RhaiResult<Decimal> {
    let invalid = |reason: &str| {
        arithmetic_error(format!(
            "invalid decimal number \"{text}\": {reason}; write plain digits with a dot for \
             the decimal point, such as \"8.42\""
        ))
    };
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() {
        return Err(invalid("it has no digits"));
    }
    if !digits_only(whole) || !digits_only(fraction) {
        return Err(invalid(
            "only an optional sign, digits and one dot are allowed",
        ));
    }
    Decimal::from_str(text).map_err(|error| invalid(&error.to_string()))
}

/// Converts a float through its shortest round-trip text, which Rust's `Display` for `f64`
/// prints, so the decimal has the digits a person would write.
pub(super) fn float_to_decimal(float: FLOAT) -> RhaiResult<Decimal> {
    if !float.is_finite() {
        return Err(arithmetic_error(format!(
            "the float {float} cannot be converted to a decimal"
        )));
    }
    let text = float.to_string();
    Decimal::from_str(&text).map_err(|error| {
        arithmetic_error(format!(
            "the float {text} cannot be converted to a decimal: {error}"
        ))
    })
}

/// Rounds to `places` digits after the point, with halves rounded away from zero.
fn round_money(value: Decimal, places: INT) -> RhaiResult<Decimal> {
    let places = u32::try_from(places).map_err(|_| {
        arithmetic_error(format!(
            "round_money() needs 0 or more decimal places, got {places}"
        ))
    })?;
    Ok(value.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero))
}

/// Rounds `value` to a multiple of `step` with `round`, which is `Decimal::ceil` or
/// `Decimal::floor`.
fn round_to_step(
    value: Decimal,
    step: &Dynamic,
    round: fn(&Decimal) -> Decimal,
) -> RhaiResult<Decimal> {
    let step = to_decimal(step)?;
    if step <= Decimal::ZERO {
        return Err(arithmetic_error(format!(
            "the rounding step must be greater than zero, got {step}"
        )));
    }
    let steps = value
        .checked_div(step)
        .ok_or_else(|| arithmetic_error(format!("decimal overflow: {value} / {step}")))?;
    round(&steps)
        .checked_mul(step)
        .ok_or_else(|| arithmetic_error(format!("decimal overflow: {steps} * {step}")))
}

fn calculate(
    operator: &str,
    apply: Arithmetic,
    left: Decimal,
    right: Decimal,
) -> RhaiResult<Decimal> {
    apply(left, right).ok_or_else(|| {
        let problem = if right.is_zero() && matches!(operator, "/" | "%") {
            "division by zero"
        } else {
            "decimal overflow"
        };
        arithmetic_error(format!("{problem}: {left} {operator} {right}"))
    })
}

/// Orders a decimal and a float. The float is compared as a decimal when it has one, which keeps
/// `decimal("1.19") == 1.19` true. Otherwise both are compared as floats.
fn compare(decimal: Decimal, float: FLOAT) -> Option<Ordering> {
    match float_to_decimal(float) {
        Ok(converted) => Some(decimal.cmp(&converted)),
        Err(_) => decimal.to_f64()?.partial_cmp(&float),
    }
}

fn arithmetic_error(message: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorArithmetic(message, Position::NONE).into()
}
