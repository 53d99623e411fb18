//! Builds the node tree from yaml-rust2's parser events, checking keys on
//! the way: duplicates, merge keys and keys that are lists or maps.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::super::diag::{Diagnostic, Mark, join_index, join_key};
use super::{Key, Node, NodeKind, Scalar, resolve_plain, to_mark};

/// Maximum number of nodes that aliases may copy into one document. This
/// stops a small file with nested aliases ("billion laughs") from expanding
/// into a huge tree.
const MAX_ALIAS_NODES: usize = 100_000;

fn is_str_tag(tag: Option<&Tag>) -> bool {
    tag.is_some_and(|tag| tag.handle == "tag:yaml.org,2002:" && tag.suffix == "str")
}

/// The next item that an open map expects.
enum Slot {
    /// A key.
    Key,
    /// The value of this key.
    Value(Key),
    /// The value of a key that was rejected and is dropped.
    Dropped,
}

enum Container {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Key, Node)>,
        first_seen: HashMap<String, Mark>,
        slot: Slot,
    },
}

/// A list or map whose end event has not arrived yet.
struct Frame {
    container: Container,
    mark: Mark,
    /// A block map's start event is positioned at the first `:`, so its mark
    /// is replaced by the first key's mark when that key arrives.
    mark_from_first_key: bool,
    /// yaml-rust2 anchor id, 0 when there is none.
    anchor: usize,
    path: String,
}

/// Receives parser events and builds the node tree.
pub(super) struct Builder {
    /// The source as characters, because yaml-rust2 marker indexes count characters.
    chars: Vec<char>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// Source text of anchored scalars, used when an alias is a map key.
    anchor_texts: HashMap<usize, String>,
    alias_nodes: usize,
    pub(super) root: Option<Node>,
    documents: usize,
    pub(super) diags: Vec<Diagnostic>,
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        if event == Event::DocumentStart {
            self.documents += 1;
            if self.documents == 2 {
                let message = "a file may contain only one YAML document; remove the second `---` or split the file";
                self.diags
                    .push(Diagnostic::new(to_mark(marker), "", message));
            }
        }
        if self.documents > 1 {
            return;
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.scalar(text, style, anchor, tag.as_ref(), to_mark(marker));
            }
            Event::Alias(anchor) => self.alias(anchor, to_mark(marker)),
            Event::SequenceStart(anchor, _) => {
                let mark = self.sequence_mark(marker);
                self.open(Container::Seq(Vec::new()), mark, false, anchor);
            }
            Event::MappingStart(anchor, _) => {
                let block = self.chars.get(marker.index()) != Some(&'{');
                let container = Container::Map {
                    entries: Vec::new(),
                    first_seen: HashMap::new(),
                    slot: Slot::Key,
                };
                self.open(container, to_mark(marker), block, anchor);
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            _ => {}
        }
    }
}

impl Builder {
    pub(super) fn new(src: &str) -> Self {
        Self {
            chars: src.chars().collect(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            anchor_texts: HashMap::new(),
            alias_nodes: 0,
            root: None,
            documents: 0,
            diags: Vec::new(),
        }
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        mark: Mark,
    ) {
        let plain = style == TScalarStyle::Plain;
        let value = if plain && !is_str_tag(tag) {
            resolve_plain(&text)
        } else {
            Scalar::Str(text.clone())
        };
        // An empty value is positioned at the next token, which may be on a
        // later line, so point at its key instead.
        // NOTE: an empty list item (`-` alone) keeps the next token's position.
        let mark = match self.stack.last() {
            Some(Frame {
                container:
                    Container::Map {
                        slot: Slot::Value(key),
                        ..
                    },
                ..
            }) if plain && text.is_empty() => key.mark,
            _ => mark,
        };
        let node = Node {
            kind: NodeKind::Scalar(value),
            mark,
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
            self.anchor_texts.insert(anchor, text.clone());
        }
        if self.expects_key() {
            self.add_key(Key { name: text, mark }, plain);
        } else {
            self.attach(node);
        }
    }

    fn alias(&mut self, anchor: usize, mark: Mark) {
        if self.expects_key() {
            match self.anchor_texts.get(&anchor) {
                Some(text) => self.add_key(
                    Key {
                        name: text.clone(),
                        mark,
                    },
                    false,
                ),
                None => self.reject_key(mark, "an alias to a list or map"),
            }
            return;
        }
        let Some(anchored) = self.anchors.get(&anchor) else {
            // yaml-rust2 rejects unknown anchors, so this is an alias inside
            // the list or map that its anchor names.
            let path = self.child_path();
            self.diags.push(Diagnostic::new(
                mark,
                path,
                "an alias cannot refer to a list or map that contains it",
            ));
            self.attach(null_node(mark));
            return;
        };
        // Once the limit is passed, further aliases become null without counting.
        let size = if self.alias_nodes > MAX_ALIAS_NODES {
            0
        } else {
            anchored.count()
        };
        if self.alias_nodes > MAX_ALIAS_NODES || self.alias_nodes + size > MAX_ALIAS_NODES {
            if self.alias_nodes <= MAX_ALIAS_NODES {
                let message = format!(
                    "aliases expand to more than {MAX_ALIAS_NODES} nodes; write the values out or use fewer nested aliases"
                );
                let path = self.child_path();
                self.diags.push(Diagnostic::new(mark, path, message));
            }
            self.alias_nodes = MAX_ALIAS_NODES + 1;
            self.attach(null_node(mark));
            return;
        }
        self.alias_nodes += size;
        let copy = anchored.clone();
        self.attach(copy);
    }

    /// Returns the mark of a sequence start. A block sequence that is not
    /// indented below its key (`key:\n- a`) starts after its first `-`
    /// according to yaml-rust2, so the mark is moved back to that `-`.
    fn sequence_mark(&self, marker: Marker) -> Mark {
        let mark = to_mark(marker);
        let index = marker.index();
        if matches!(self.chars.get(index), Some('-' | '[')) {
            return mark;
        }
        let mut start = index;
        while start > 0 && matches!(self.chars.get(start - 1), Some(' ' | '\t')) {
            start -= 1;
        }
        if start > 0 && self.chars.get(start - 1) == Some(&'-') {
            let col = mark.col.saturating_sub(index - start + 1).max(1);
            return Mark {
                line: mark.line,
                col,
            };
        }
        mark
    }

    fn open(&mut self, container: Container, mark: Mark, mark_from_first_key: bool, anchor: usize) {
        let path = self.child_path();
        self.stack.push(Frame {
            container,
            mark,
            mark_from_first_key,
            anchor,
            path,
        });
    }

    fn close(&mut self) {
        let frame = self
            .stack
            .pop()
            .expect("invariant: yaml-rust2 sends balanced start and end events");
        let kind = match frame.container {
            Container::Seq(items) => NodeKind::Seq(items),
            Container::Map { entries, .. } => NodeKind::Map(entries),
        };
        let node = Node {
            kind,
            mark: frame.mark,
        };
        if frame.anchor != 0 {
            self.anchors.insert(frame.anchor, node.clone());
        }
        if self.expects_key() {
            let found = if matches!(node.kind, NodeKind::Seq(_)) {
                "a list"
            } else {
                "a map"
            };
            self.reject_key(node.mark, found);
        } else {
            self.attach(node);
        }
    }

    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                container: Container::Map {
                    slot: Slot::Key,
                    ..
                },
                ..
            })
        )
    }

    /// Returns the path of the node that comes next in the open container.
    fn child_path(&self) -> String {
        let Some(frame) = self.stack.last() else {
            return String::new();
        };
        match &frame.container {
            Container::Seq(items) => join_index(&frame.path, items.len()),
            Container::Map {
                slot: Slot::Value(key),
                ..
            } => join_key(&frame.path, &key.name),
            Container::Map { .. } => frame.path.clone(),
        }
    }

    /// Adds a value to the open container, or makes it the document's root.
    fn attach(&mut self, node: Node) {
        let Some(frame) = self.stack.last_mut() else {
            self.root.get_or_insert(node);
            return;
        };
        match &mut frame.container {
            Container::Seq(items) => items.push(node),
            Container::Map { entries, slot, .. } => {
                if let Slot::Value(key) = std::mem::replace(slot, Slot::Key) {
                    entries.push((key, node));
                }
            }
        }
    }

    /// Accepts a map key, reporting merge keys and duplicates.
    fn add_key(&mut self, key: Key, plain: bool) {
        let frame = self
            .stack
            .last_mut()
            .expect("invariant: keys arrive inside a map");
        if std::mem::take(&mut frame.mark_from_first_key) {
            frame.mark = key.mark;
        }
        let Container::Map {
            first_seen, slot, ..
        } = &mut frame.container
        else {
            return;
        };
        if plain && key.name == "<<" {
            let message = "merge keys (`<<`) are not supported; write the keys out";
            self.diags
                .push(Diagnostic::new(key.mark, frame.path.clone(), message));
            *slot = Slot::Dropped;
            return;
        }
        if let Some(first) = first_seen.get(&key.name) {
            let message = format!(
                "duplicate key `{}` (first at line {})",
                key.name, first.line
            );
            self.diags
                .push(Diagnostic::new(key.mark, frame.path.clone(), message));
            // The first value stays, so the rest of the file can still be
            // checked against it.
            *slot = Slot::Dropped;
            return;
        }
        first_seen.insert(key.name.clone(), key.mark);
        *slot = Slot::Value(key);
    }

    /// Reports a map key that is not a scalar and drops the value that follows it.
    fn reject_key(&mut self, mark: Mark, found: &str) {
        let frame = self
            .stack
            .last_mut()
            .expect("invariant: keys arrive inside a map");
        if std::mem::take(&mut frame.mark_from_first_key) {
            frame.mark = mark;
        }
        let message = format!("a map key must be a string, found {found}");
        self.diags
            .push(Diagnostic::new(mark, frame.path.clone(), message));
        if let Container::Map { slot, .. } = &mut frame.container {
            *slot = Slot::Dropped;
        }
    }
}

fn null_node(mark: Mark) -> Node {
    Node {
        kind: NodeKind::Scalar(Scalar::Null),
        mark,
    }
}
