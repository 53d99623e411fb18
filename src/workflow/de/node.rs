//! The serde `Deserializer` for one node of the YAML tree.

use std::fmt::Display;

use serde::de::{Deserializer, Visitor};

use super::super::diag::Mark;
use super::super::yaml::{Key, Node, NodeKind, Scalar};
use super::access::{EnumAccess, MapAccess, SeqAccess, SpannedAccess, StructAccess};
use super::{Error, Run, SPANNED_NAME, describe, name_list, report_unknown_fields};

/// Deserializes one node, recording problems in the shared [`Run`].
#[derive(Clone)]
pub(super) struct NodeDeserializer<'a> {
    pub(super) node: &'a Node,
    /// Field path of the node, such as `steps[1].with`.
    pub(super) path: String,
    pub(super) run: &'a Run<'a>,
}

impl<'a> NodeDeserializer<'a> {
    pub(super) fn new(node: &'a Node, path: String, run: &'a Run<'a>) -> Self {
        Self { node, path, run }
    }

    pub(super) fn child(&self, node: &'a Node, path: String) -> Self {
        Self::new(node, path, self.run)
    }

    fn record(&self, message: impl Into<String>) {
        self.run.record(self.node.mark, &self.path, message);
    }

    /// Records that the node is not of the `expected` type.
    fn mismatch(&self, expected: &str) -> Error {
        self.record(format!(
            "expected {expected}, found {}",
            describe(self.node)
        ));
        Error::Failed
    }

    /// Records an error that a visitor returned for this node.
    pub(super) fn settle<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|error| match error {
            Error::Custom(_) | Error::MissingField(_) => {
                self.record(error.to_string());
                Error::Failed
            }
            Error::Failed | Error::Abandoned => error,
        })
    }

    /// Records `message`, then gives the visitor a placeholder value so that
    /// the rest of the document is still read. An error for the placeholder
    /// is not recorded because it would only repeat `message`.
    fn recover<T>(
        &self,
        message: String,
        placeholder: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.record(message);
        placeholder().map_err(|_| Error::Failed)
    }

    /// Returns the node as an integer of type `T`, or the message for why it is not one.
    ///
    /// NOTE: the parser keeps integers above `i64::MAX` as strings, so `u64`
    /// and `u128` targets reject them with "expected an integer, found a string".
    fn integer<T: TryFrom<i64>>(&self, min: impl Display, max: impl Display) -> Result<T, String> {
        match &self.node.kind {
            NodeKind::Scalar(Scalar::Int(value)) => T::try_from(*value)
                .map_err(|_| format!("expected an integer from {min} to {max}, found {value}")),
            _ => Err(format!(
                "expected an integer, found {}",
                describe(self.node)
            )),
        }
    }

    fn read_seq<'de, V: Visitor<'de>>(
        &self,
        items: &'a [Node],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut access = SeqAccess::new(self, items);
        let result = visitor.visit_seq(&mut access);
        self.settle_partial(result, access.stopped(), access.shortened())
    }

    fn read_map<'de, V: Visitor<'de>>(
        &self,
        entries: &'a [(Key, Node)],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut access = MapAccess::new(self, entries);
        let result = visitor.visit_map(&mut access);
        self.settle_partial(result, access.stopped(), access.shortened())
    }

    /// Settles a visitor's result for a list or map that may have been read
    /// only in part. When an element failed in this run (`stopped`) or in an
    /// earlier one (`shortened`), an error from the visitor, such as a tuple
    /// of the wrong length, is a consequence of that and is not recorded.
    fn settle_partial<T>(
        &self,
        result: Result<T, Error>,
        stopped: bool,
        shortened: bool,
    ) -> Result<T, Error> {
        match result {
            Err(_) if stopped => Err(Error::Abandoned),
            Err(_) if shortened => Err(Error::Failed),
            other => self.settle(other),
        }
    }

    /// Returns the variant name, its position and its value, if the node
    /// is a plain variant name or a map with one key.
    fn variant(&self) -> Option<(&'a str, Mark, Option<&'a Node>)> {
        match &self.node.kind {
            NodeKind::Scalar(Scalar::Str(name)) => Some((name, self.node.mark, None)),
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                Some((&key.name, key.mark, Some(value)))
            }
            _ => None,
        }
    }
}

/// Deserializes an integer type, range checked, with a placeholder of 0 on a mismatch.
macro_rules! deserialize_integer {
    ($($method:ident => $visit:ident($ty:ty),)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.integer::<$ty>(<$ty>::MIN, <$ty>::MAX) {
                Ok(value) => self.settle(visitor.$visit(value)),
                Err(message) => self.recover(message, || visitor.$visit(0)),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for NodeDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.kind {
            NodeKind::Scalar(Scalar::Null) => visitor.visit_unit(),
            NodeKind::Scalar(Scalar::Bool(value)) => visitor.visit_bool(*value),
            NodeKind::Scalar(Scalar::Int(value)) => visitor.visit_i64(*value),
            NodeKind::Scalar(Scalar::Float(value)) => visitor.visit_f64(*value),
            NodeKind::Scalar(Scalar::Str(value)) => visitor.visit_str(value),
            NodeKind::Seq(items) => return self.read_seq(items, visitor),
            NodeKind::Map(entries) => return self.read_map(entries, visitor),
        };
        self.settle(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Scalar(Scalar::Bool(value)) => self.settle(visitor.visit_bool(*value)),
            _ => {
                let message = format!("expected a boolean, found {}", describe(self.node));
                self.recover(message, || visitor.visit_bool(false))
            }
        }
    }

    deserialize_integer! {
        deserialize_i8 => visit_i8(i8),
        deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64),
        deserialize_i128 => visit_i128(i128),
        deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32),
        deserialize_u64 => visit_u64(u64),
        deserialize_u128 => visit_u128(u128),
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Scalar(Scalar::Float(value)) => self.settle(visitor.visit_f32(*value as f32)),
            NodeKind::Scalar(Scalar::Int(value)) => self.settle(visitor.visit_f32(*value as f32)),
            _ => {
                let message = format!("expected a number, found {}", describe(self.node));
                self.recover(message, || visitor.visit_f32(0.0))
            }
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Scalar(Scalar::Float(value)) => self.settle(visitor.visit_f64(*value)),
            NodeKind::Scalar(Scalar::Int(value)) => self.settle(visitor.visit_f64(*value as f64)),
            _ => {
                let message = format!("expected a number, found {}", describe(self.node));
                self.recover(message, || visitor.visit_f64(0.0))
            }
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let NodeKind::Scalar(Scalar::Str(value)) = &self.node.kind {
            let mut chars = value.chars();
            if let (Some(only), None) = (chars.next(), chars.next()) {
                return self.settle(visitor.visit_char(only));
            }
        }
        let message = format!("expected a single character, found {}", describe(self.node));
        self.recover(message, || visitor.visit_char(' '))
    }

    /// Accepts only strings. An integer, number or boolean is reported rather
    /// than converted, because its text may already have changed (`1.50` is
    /// read as 1.5), so the fix is to quote it in the file.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let found = describe(self.node);
        match &self.node.kind {
            NodeKind::Scalar(Scalar::Str(value)) => self.settle(visitor.visit_str(value)),
            NodeKind::Scalar(Scalar::Bool(_) | Scalar::Int(_) | Scalar::Float(_)) => {
                let message = format!("expected a string, found {found}; quote it");
                self.recover(message, || visitor.visit_str(""))
            }
            _ => self.recover(format!("expected a string, found {found}"), || {
                visitor.visit_str("")
            }),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.kind {
            NodeKind::Scalar(Scalar::Null) => visitor.visit_none(),
            _ => visitor.visit_some(self.clone()),
        };
        self.settle(result)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Scalar(Scalar::Null) => self.settle(visitor.visit_unit()),
            _ => {
                let message = format!("expected null, found {}", describe(self.node));
                self.recover(message, || visitor.visit_unit())
            }
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = visitor.visit_newtype_struct(self.clone());
        self.settle(result)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Seq(items) => self.read_seq(items, visitor),
            _ => Err(self.mismatch("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Map(entries) => self.read_map(entries, visitor),
            _ => Err(self.mismatch("a map")),
        }
    }

    /// Reads a struct from a map. Keys that are not in `fields` are recorded
    /// as unknown and not passed to the visitor, so structs do not need
    /// `deny_unknown_fields` for every unknown key to be reported.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED_NAME {
            let result = visitor.visit_map(SpannedAccess::new(&self));
            return self.settle(result);
        }
        let NodeKind::Map(entries) = &self.node.kind else {
            return Err(self.mismatch("a map"));
        };
        report_unknown_fields(self.run, &self.path, entries, fields);
        let mut access = StructAccess::new(&self, entries, fields);
        let result = visitor.visit_map(&mut access);
        match result {
            // The field failed in an earlier run, and its problem is already recorded.
            // NOTE: serde stops at the first missing field of a struct, so when
            // that is such a field, other missing fields of the struct go unreported.
            Err(Error::MissingField(field)) if access.was_skipped(field) => Err(Error::Failed),
            other => self.settle(other),
        }
    }

    /// Reads an externally tagged enum: a plain variant name for a unit
    /// variant, or a map with the variant name as its only key.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let Some((variant, mark, value)) = self.variant() else {
            let found = match &self.node.kind {
                NodeKind::Map(entries) => format!("a map with {} keys", entries.len()),
                _ => describe(self.node).to_owned(),
            };
            let names = name_list(variants);
            self.record(format!(
                "expected one of {names}, or a map with one of them as its only key, found {found}"
            ));
            return Err(Error::Failed);
        };
        let access = EnumAccess::new(&self, variant, mark, value, variants);
        let result = visitor.visit_enum(access);
        self.settle(result)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.settle(visitor.visit_unit())
    }
}
