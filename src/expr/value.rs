//! Conversion between `serde_json::Value` and Rhai's `Dynamic`.
//!
//! JSON to Rhai: integers that fit `i64` become `INT` exactly, larger unsigned integers become
//! strings (so no digit is lost), other numbers become `FLOAT`, strings stay strings and objects
//! become Rhai maps. Rhai to JSON: `INT` becomes an integer, `FLOAT` a number, a decimal a
//! string in plain form such as `"29.16"`, `()` becomes null and a character a string. Rhai
//! maps keep their keys sorted, so object keys come back in sorted order, not input order.

use rhai::{Dynamic, ImmutableString};
use serde_json::{Number, Value};

/// Maximum nesting depth of a value converted to JSON. It equals serde_json's default
/// recursion limit, so every converted value can be parsed back by serde_json.
const MAX_JSON_DEPTH: usize = 128;

pub fn json_to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(flag) => Dynamic::from_bool(*flag),
        Value::Number(number) => number_to_dynamic(number),
        Value::String(text) => text.as_str().into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        Value::Object(fields) => Dynamic::from_map(
            fields
                .iter()
                .map(|(key, field)| (key.as_str().into(), json_to_dynamic(field)))
                .collect(),
        ),
    }
}

fn number_to_dynamic(number: &Number) -> Dynamic {
    if let Some(integer) = number.as_i64() {
        Dynamic::from_int(integer)
    } else if number.is_u64() {
        // Above i64::MAX: a string keeps every digit, where a float would round it.
        Dynamic::from(number.to_string())
    } else {
        number.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float)
    }
}

/// Converts a Rhai value to JSON. Fails on NaN and infinite floats, on types without a JSON
/// form (timestamps, function pointers, ranges, BLOBs, custom types) naming the type, and on
/// values nested deeper than 128 levels.
pub fn dynamic_to_json(value: &Dynamic) -> Result<Value, String> {
    to_json(value, 0)
}

fn to_json(value: &Dynamic, depth: usize) -> Result<Value, String> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "value is nested deeper than the limit of {MAX_JSON_DEPTH} levels"
        ));
    }
    if value.is_shared() {
        // Variables captured by closures are shared. Converting reads a snapshot.
        return to_json(&value.flatten_clone(), depth);
    }
    if let Some(scalar) = scalar_to_json(value)? {
        return Ok(scalar);
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        let converted = items
            .iter()
            .map(|item| to_json(item, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Value::Array(converted));
    }
    if let Some(fields) = value.read_lock::<rhai::Map>() {
        let mut object = serde_json::Map::with_capacity(fields.len());
        for (key, field) in fields.iter() {
            object.insert(key.to_string(), to_json(field, depth + 1)?);
        }
        return Ok(Value::Object(object));
    }
    Err(format!(
        "a value of type `{}` cannot be converted to JSON",
        value.type_name()
    ))
}

/// Converts unit, booleans, numbers, strings and characters. Returns `None` for other types.
fn scalar_to_json(value: &Dynamic) -> Result<Option<Value>, String> {
    let scalar = if value.is_unit() {
        Value::Null
    } else if let Ok(flag) = value.as_bool() {
        Value::Bool(flag)
    } else if let Ok(integer) = value.as_int() {
        Value::from(integer)
    } else if let Ok(float) = value.as_float() {
        float_to_json(float)?
    } else if let Ok(decimal) = value.as_decimal() {
        Value::String(decimal.to_string())
    } else if let Some(text) = value.read_lock::<ImmutableString>() {
        Value::String(text.to_string())
    } else if let Ok(character) = value.as_char() {
        Value::String(character.to_string())
    } else {
        return Ok(None);
    };
    Ok(Some(scalar))
}

fn float_to_json(float: f64) -> Result<Value, String> {
    Number::from_f64(float).map(Value::Number).ok_or_else(|| {
        format!("the float {float} cannot be converted to JSON, which has no NaN or infinity")
    })
}

/// Converts a value to the text that string interpolation inserts. Strings are inserted as they
/// are, `()` as nothing, numbers and decimals in plain form, and arrays and maps as compact
/// JSON.
pub(super) fn dynamic_to_text(value: &Dynamic) -> Result<String, String> {
    if let Some(text) = value.read_lock::<ImmutableString>() {
        return Ok(text.to_string());
    }
    match dynamic_to_json(value)? {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text),
        other => Ok(other.to_string()),
    }
}
