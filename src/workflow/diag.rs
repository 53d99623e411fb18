//! Diagnostics for workflow and connector files: a position, a field path and
//! a message, printed as `file:line:col: path: message`. Also builds the field
//! paths (`steps[2].with.url`) and the "did you mean" hints that the YAML
//! parser and the deserializer attach to their messages.

use std::fmt;

/// 1-based line and column in a source file.
///
/// The column counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// File name as shown to the user, or empty when not yet known.
    pub file: String,
    pub mark: Mark,
    /// Field path such as `steps[1].with.url`, or empty for the whole document.
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    /// Creates a diagnostic without a file name; add one with [`Diagnostic::in_file`].
    pub fn new(mark: Mark, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: String::new(),
            mark,
            path: path.into(),
            message: message.into(),
        }
    }

    /// Sets the file name shown before the position.
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_owned();
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}:", self.file)?;
        }
        write!(f, "{}:{}: ", self.mark.line, self.mark.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Appends a map key to a field path: `steps[1]` and `with` give `steps[1].with`.
///
/// A key that is not made of letters, digits, `_` and `-` is written as a quoted
/// index (`headers["x.y"]`) so that the path stays unambiguous.
pub fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if !plain {
        let quoted = serde_json::Value::from(key).to_string();
        return format!("{path}[{quoted}]");
    }
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends a list index to a field path: `steps` and 2 give `steps[2]`.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// Returns the candidate closest to `word`, for "did you mean" hints.
///
/// Uses the optimal string alignment distance, so swapping two neighbouring
/// letters costs 1. A candidate qualifies when its distance is at most 2 or at
/// most a third of the length of `word`, and smaller than the length of both
/// words, so that a one-letter word does not match every other one-letter word.
/// Ties go to the earlier candidate.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word_len = word.chars().count();
    let limit = (word_len / 3).max(2);
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let distance = edit_distance(word, candidate);
        let shortest = word_len.min(candidate.chars().count());
        if distance > limit || distance >= shortest.max(1) {
            continue;
        }
        if best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// swaps of two adjacent characters each cost 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the dynamic programming table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut value = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                value = value.min(before[j - 2] + 1);
            }
            current[j] = value;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_file_and_path() {
        let diagnostic = Diagnostic::new(Mark { line: 3, col: 5 }, "steps[0].uses", "not found")
            .in_file("flows/a.yaml");
        assert_eq!(
            diagnostic.to_string(),
            "flows/a.yaml:3:5: steps[0].uses: not found"
        );
    }

    #[test]
    fn display_without_path() {
        let diagnostic =
            Diagnostic::new(Mark { line: 1, col: 1 }, "", "empty file").in_file("a.yaml");
        assert_eq!(diagnostic.to_string(), "a.yaml:1:1: empty file");
    }

    #[test]
    fn display_without_file() {
        let diagnostic = Diagnostic::new(Mark { line: 2, col: 7 }, "name", "too long");
        assert_eq!(diagnostic.to_string(), "2:7: name: too long");
    }

    #[test]
    fn marks_order_by_line_then_column() {
        let early = Mark { line: 2, col: 9 };
        let late = Mark { line: 3, col: 1 };
        assert!(early < late);
    }

    #[test]
    fn join_builds_paths() {
        assert_eq!(join_key("", "steps"), "steps");
        assert_eq!(join_index("steps", 2), "steps[2]");
        assert_eq!(join_key("steps[2]", "with"), "steps[2].with");
        assert_eq!(join_key("with", "content-type"), "with.content-type");
        assert_eq!(join_index("", 0), "[0]");
    }

    #[test]
    fn join_quotes_unusual_keys() {
        assert_eq!(join_key("with", "a.b"), r#"with["a.b"]"#);
        assert_eq!(join_key("", "two words"), r#"["two words"]"#);
        assert_eq!(join_key("vars", ""), r#"vars[""]"#);
    }

    #[test]
    fn suggest_finds_swapped_letters() {
        assert_eq!(
            suggest("retyr", &["uses", "retry", "timeout"]),
            Some("retry")
        );
    }

    #[test]
    fn suggest_finds_missing_letter() {
        assert_eq!(
            suggest("timout", &["uses", "retry", "timeout"]),
            Some("timeout")
        );
    }

    #[test]
    fn suggest_allows_a_third_of_long_words() {
        // Three edits are within a third of an 11-letter word.
        assert_eq!(
            suggest("dedupheadxx", &["dedup_header"]),
            Some("dedup_header")
        );
    }

    #[test]
    fn suggest_rejects_distant_words() {
        assert_eq!(suggest("colour", &["uses", "retry"]), None);
    }

    #[test]
    fn suggest_rejects_short_unrelated_words() {
        assert_eq!(suggest("x", &["a", "id"]), None);
    }

    #[test]
    fn suggest_prefers_closest() {
        assert_eq!(suggest("nme", &["names", "name"]), Some("name"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
    }
}
