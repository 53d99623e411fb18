//! serde access types that hand lists, maps, struct fields, enum variants,
//! map keys and [`super::Spanned`] parts to serde's visitors.

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::super::diag::{Mark, join_index, join_key};
use super::super::yaml::{Key, Node, NodeKind, Scalar};
use super::node::NodeDeserializer;
use super::{Error, Run, SPANNED_FIELDS, unknown_name_message};

/// Elements of a list. After an element fails, the list ends early for the
/// visitor, so that the values around the list are still read. The next run
/// leaves the element out and reads the rest of the list.
pub(super) struct SeqAccess<'p, 'a> {
    parent: &'p NodeDeserializer<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    stopped: bool,
    shortened: bool,
}

impl<'p, 'a> SeqAccess<'p, 'a> {
    pub(super) fn new(parent: &'p NodeDeserializer<'a>, items: &'a [Node]) -> Self {
        Self {
            parent,
            items: items.iter().enumerate(),
            stopped: false,
            shortened: false,
        }
    }

    /// Returns whether an element failed in this run.
    pub(super) fn stopped(&self) -> bool {
        self.stopped
    }

    /// Returns whether elements that failed in earlier runs were left out.
    pub(super) fn shortened(&self) -> bool {
        self.shortened
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, '_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.stopped {
            return Ok(None);
        }
        let run = self.parent.run;
        let Some((index, node)) = self.items.find(|(_, node)| {
            let skipped = run.is_skipped(node);
            self.shortened |= skipped;
            !skipped
        }) else {
            return Ok(None);
        };
        let path = join_index(&self.parent.path, index);
        let checkpoint = run.checkpoint();
        match seed.deserialize(self.parent.child(node, path.clone())) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                run.fail(node, &path, checkpoint, error);
                self.stopped = true;
                Ok(None)
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Entries of a map read as a map (`HashMap`, `IndexMap`, `serde_json::Value`).
pub(super) struct MapAccess<'p, 'a> {
    parent: &'p NodeDeserializer<'a>,
    entries: std::slice::Iter<'a, (Key, Node)>,
    /// The entry whose key was returned and whose value is next.
    pending: Option<&'a (Key, Node)>,
    stopped: bool,
    shortened: bool,
}

impl<'p, 'a> MapAccess<'p, 'a> {
    pub(super) fn new(parent: &'p NodeDeserializer<'a>, entries: &'a [(Key, Node)]) -> Self {
        Self {
            parent,
            entries: entries.iter(),
            pending: None,
            stopped: false,
            shortened: false,
        }
    }

    /// Returns whether an entry failed in this run.
    pub(super) fn stopped(&self) -> bool {
        self.stopped
    }

    /// Returns whether entries that failed in earlier runs were left out.
    pub(super) fn shortened(&self) -> bool {
        self.shortened
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, '_> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let run = self.parent.run;
        let Some(entry) = self.entries.find(|(_, value)| {
            let skipped = run.is_skipped(value);
            self.shortened |= skipped;
            !skipped
        }) else {
            return Ok(None);
        };
        let (key, value) = entry;
        let path = join_key(&self.parent.path, &key.name);
        let checkpoint = run.checkpoint();
        let key_deserializer = KeyDeserializer {
            key,
            path: &path,
            run,
        };
        match seed.deserialize(key_deserializer) {
            Ok(read) => {
                self.pending = Some(entry);
                Ok(Some(read))
            }
            Err(error) => {
                run.fail(value, &path, checkpoint, error);
                self.stopped = true;
                Err(Error::Abandoned)
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(Error::Custom(
                "a map value was requested before its key".to_owned(),
            ));
        };
        let path = join_key(&self.parent.path, &key.name);
        let run = self.parent.run;
        let checkpoint = run.checkpoint();
        seed.deserialize(self.parent.child(value, path.clone()))
            .map_err(|error| {
                run.fail(value, &path, checkpoint, error);
                self.stopped = true;
                Error::Abandoned
            })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Entries of a map read as a struct. Keys that are not fields were already
/// recorded as unknown and are not passed on.
pub(super) struct StructAccess<'p, 'a> {
    parent: &'p NodeDeserializer<'a>,
    entries: std::slice::Iter<'a, (Key, Node)>,
    fields: &'static [&'static str],
    pending: Option<&'a (Key, Node)>,
    /// Fields left out because their values failed in an earlier run.
    skipped: Vec<&'a str>,
}

impl<'p, 'a> StructAccess<'p, 'a> {
    pub(super) fn new(
        parent: &'p NodeDeserializer<'a>,
        entries: &'a [(Key, Node)],
        fields: &'static [&'static str],
    ) -> Self {
        Self {
            parent,
            entries: entries.iter(),
            fields,
            pending: None,
            skipped: Vec::new(),
        }
    }

    /// Returns whether `field` was left out because it failed in an earlier run.
    pub(super) fn was_skipped(&self, field: &str) -> bool {
        self.skipped.contains(&field)
    }
}

impl<'de> de::MapAccess<'de> for StructAccess<'_, '_> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        for entry in self.entries.by_ref() {
            let (key, value) = entry;
            if !self.fields.contains(&key.name.as_str()) {
                continue;
            }
            if self.parent.run.is_skipped(value) {
                self.skipped.push(&key.name);
                continue;
            }
            self.pending = Some(entry);
            let name: StrDeserializer<'_, Error> = key.name.as_str().into_deserializer();
            return seed.deserialize(name).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(Error::Custom(
                "a field value was requested before its name".to_owned(),
            ));
        };
        let path = join_key(&self.parent.path, &key.name);
        let run = self.parent.run;
        let checkpoint = run.checkpoint();
        seed.deserialize(self.parent.child(value, path.clone()))
            .map_err(|error| {
                run.fail(value, &path, checkpoint, error);
                Error::Abandoned
            })
    }
}

/// An enum's variant name, with its position and value.
pub(super) struct EnumAccess<'p, 'a> {
    parent: &'p NodeDeserializer<'a>,
    variant: &'a str,
    /// Position of the variant name.
    mark: Mark,
    /// The value of a `{variant: value}` map, or None for a plain name.
    value: Option<&'a Node>,
    variants: &'static [&'static str],
}

impl<'p, 'a> EnumAccess<'p, 'a> {
    pub(super) fn new(
        parent: &'p NodeDeserializer<'a>,
        variant: &'a str,
        mark: Mark,
        value: Option<&'a Node>,
        variants: &'static [&'static str],
    ) -> Self {
        Self {
            parent,
            variant,
            mark,
            value,
            variants,
        }
    }
}

impl<'de, 'p, 'a> de::EnumAccess<'de> for EnumAccess<'p, 'a> {
    type Error = Error;
    type Variant = VariantAccess<'p, 'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Error> {
        let name: StrDeserializer<'_, Error> = self.variant.into_deserializer();
        match seed.deserialize(name) {
            Ok(read) => {
                let variant = VariantAccess {
                    parent: self.parent,
                    variant: self.variant,
                    value: self.value,
                };
                Ok((read, variant))
            }
            Err(_) => {
                // serde's message has no suggestion, so it is replaced.
                let message = unknown_name_message("variant", self.variant, self.variants);
                self.parent
                    .run
                    .record(self.mark, &self.parent.path, message);
                Err(Error::Failed)
            }
        }
    }
}

/// The value of an enum variant.
pub(super) struct VariantAccess<'p, 'a> {
    parent: &'p NodeDeserializer<'a>,
    variant: &'a str,
    value: Option<&'a Node>,
}

impl<'a> VariantAccess<'_, 'a> {
    /// Returns a deserializer for the variant's value, or records that it has none.
    fn value(&self) -> Result<NodeDeserializer<'a>, Error> {
        match self.value {
            Some(node) => Ok(self
                .parent
                .child(node, join_key(&self.parent.path, self.variant))),
            None => {
                let message = format!(
                    "variant `{0}` needs a value; write it as `{0}: VALUE`",
                    self.variant
                );
                self.parent
                    .run
                    .record(self.parent.node.mark, &self.parent.path, message);
                Err(Error::Failed)
            }
        }
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess<'_, '_> {
    type Error = Error;

    /// Accepts `name`, `{name: null}` and `{name: }`. A unit variant with
    /// another value is recorded, but reading goes on.
    fn unit_variant(self) -> Result<(), Error> {
        if let Some(node) = self.value
            && node.kind != NodeKind::Scalar(Scalar::Null)
        {
            let message = format!(
                "variant `{0}` takes no value; write just `{0}`",
                self.variant
            );
            let path = join_key(&self.parent.path, self.variant);
            self.parent.run.record(node.mark, &path, message);
        }
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self.value()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.value()?.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()?.deserialize_struct("", fields, visitor)
    }
}

/// A map key. Keys are strings, but integer and boolean targets parse the
/// text, so that `HashMap<u16, _>` works for keys such as `200`.
#[derive(Clone, Copy)]
struct KeyDeserializer<'a> {
    key: &'a Key,
    path: &'a str,
    run: &'a Run<'a>,
}

impl KeyDeserializer<'_> {
    fn settle<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|error| match error {
            Error::Custom(_) | Error::MissingField(_) => self.invalid(&error.to_string()),
            Error::Failed | Error::Abandoned => error,
        })
    }

    fn invalid(&self, message: &str) -> Error {
        self.run
            .record(self.key.mark, self.path, format!("invalid key: {message}"));
        Error::Failed
    }
}

/// Deserializes a key as an integer type by parsing its text.
macro_rules! parse_key {
    ($($method:ident => $visit:ident,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.key.name.parse() {
                Ok(value) => self.settle(visitor.$visit(value)),
                Err(error) => Err(self.invalid(&format!("`{}` is not a valid integer here: {error}", self.key.name))),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for KeyDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.settle(visitor.visit_str(&self.key.name))
    }

    parse_key! {
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_u128 => visit_u128,
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.key.name.as_str() {
            "true" => self.settle(visitor.visit_bool(true)),
            "false" => self.settle(visitor.visit_bool(false)),
            other => Err(self.invalid(&format!("expected `true` or `false`, found `{other}`"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = visitor.visit_some(self);
        self.settle(result)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = visitor.visit_newtype_struct(self);
        self.settle(result)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let name: StrDeserializer<'_, Error> = self.key.name.as_str().into_deserializer();
        self.settle(visitor.visit_enum(name))
    }

    serde::forward_to_deserialize_any! {
        f32 f64 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// The parts of a [`super::Spanned`]: line, column, path and value, in the
/// order of [`SPANNED_FIELDS`].
pub(super) struct SpannedAccess<'p, 'a> {
    parent: &'p NodeDeserializer<'a>,
    /// Index into [`SPANNED_FIELDS`] of the next key.
    next: usize,
}

impl<'p, 'a> SpannedAccess<'p, 'a> {
    pub(super) fn new(parent: &'p NodeDeserializer<'a>) -> Self {
        Self { parent, next: 0 }
    }
}

impl<'de> de::MapAccess<'de> for SpannedAccess<'_, '_> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let Some(name) = SPANNED_FIELDS.get(self.next) else {
            return Ok(None);
        };
        let name: StrDeserializer<'_, Error> = (*name).into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let mark = self.parent.node.mark;
        let part = self.next;
        self.next += 1;
        match part {
            0 => seed.deserialize(IntoDeserializer::<Error>::into_deserializer(mark.line)),
            1 => seed.deserialize(IntoDeserializer::<Error>::into_deserializer(mark.col)),
            2 => seed.deserialize(IntoDeserializer::<Error>::into_deserializer(
                self.parent.path.as_str(),
            )),
            3 => seed.deserialize(self.parent.clone()),
            _ => Err(Error::Custom(
                "a Spanned value has only four parts".to_owned(),
            )),
        }
    }
}
