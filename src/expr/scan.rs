//! A small lexer for Rhai source text, used before Rhai parses anything. It skips string
//! literals and comments, so the template parser can find the `}}` that closes an expression
//! and the secret scan can read `secrets.X` and `secrets["X"]`. It does not check Rhai syntax,
//! because the Rhai parser does that when the expression or script is compiled.

/// One lexical token. Tokens that neither caller needs (numbers, character literals, backtick
/// strings) are reported as `Other`, so that they still separate their neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
    Ident(&'a str),
    /// Body of a `"..."` or raw `#"..."#` string literal, with escapes left undecoded.
    Str(&'a str),
    Punct(char),
    Other,
}

/// Lexer state for a backtick string: either its text, or the `${ }` interpolation inside it
/// with the count of `{` opened within that interpolation.
enum Mode {
    Backtick,
    Interpolation { depth: usize },
}

pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    modes: Vec<Mode>,
}

impl<'a> Lexer<'a> {
    /// Starts lexing `src` at byte offset `start`, in ordinary code.
    pub(super) fn new(src: &'a str, start: usize) -> Self {
        Self {
            src,
            pos: start,
            modes: Vec::new(),
        }
    }

    /// Returns the next token and the byte offset where it starts, or `None` at the end of the
    /// text. An unterminated string or comment runs to the end of the text.
    pub(super) fn next_token(&mut self) -> Option<(usize, Token<'a>)> {
        loop {
            if matches!(self.modes.last(), Some(Mode::Backtick)) {
                self.skip_backtick_text();
                continue;
            }
            let start = self.pos;
            let c = self.peek(0)?;
            if let Some(token) = self.lex_code(c) {
                return Some((start, token));
            }
        }
    }

    /// Lexes one item of code starting with `c`. Returns `None` for whitespace, comments and the
    /// braces that open or close a backtick interpolation.
    fn lex_code(&mut self, c: char) -> Option<Token<'a>> {
        match c {
            c if c.is_whitespace() => self.bump(c.len_utf8()),
            '/' if self.peek(1) == Some('/') => self.skip_line_comment(),
            '/' if self.peek(1) == Some('*') => self.skip_block_comment(),
            '"' => return Some(self.lex_quoted_string()),
            '\'' => return Some(self.lex_char_literal()),
            '#' if matches!(self.peek(1), Some('"' | '#')) => return Some(self.lex_raw_string()),
            '`' => {
                self.bump(1);
                self.modes.push(Mode::Backtick);
                return Some(Token::Other);
            }
            c if c.is_ascii_alphabetic() || c == '_' => return Some(self.lex_identifier()),
            c if c.is_ascii_digit() => {
                self.take_word();
                return Some(Token::Other);
            }
            '{' | '}' => return self.lex_brace(c),
            c => {
                self.bump(c.len_utf8());
                return Some(Token::Punct(c));
            }
        }
        None
    }

    fn lex_brace(&mut self, c: char) -> Option<Token<'a>> {
        self.bump(1);
        if let Some(Mode::Interpolation { depth }) = self.modes.last_mut() {
            if c == '{' {
                *depth += 1;
            } else if *depth == 0 {
                // This `}` closes `${`, so lexing returns to the backtick string's text.
                self.modes.pop();
                return None;
            } else {
                *depth -= 1;
            }
        }
        Some(Token::Punct(c))
    }

    fn lex_identifier(&mut self) -> Token<'a> {
        Token::Ident(self.take_word())
    }

    /// Consumes a run of ASCII letters, digits and underscores.
    fn take_word(&mut self) -> &'a str {
        let start = self.pos;
        let rest = &self.src[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        &self.src[start..self.pos]
    }

    fn lex_quoted_string(&mut self) -> Token<'a> {
        self.bump(1);
        let body_start = self.pos;
        let body_end = self.skip_escaped_until('"');
        Token::Str(&self.src[body_start..body_end])
    }

    fn lex_char_literal(&mut self) -> Token<'a> {
        self.bump(1);
        self.skip_escaped_until('\'');
        Token::Other
    }

    /// Consumes text up to and including an unescaped `quote` and returns the offset of that
    /// quote, or the end of the text when the literal is unterminated.
    fn skip_escaped_until(&mut self, quote: char) -> usize {
        while let Some(c) = self.peek(0) {
            if c == quote {
                let end = self.pos;
                self.bump(1);
                return end;
            }
            self.bump(c.len_utf8());
            if c == '\\'
                && let Some(escaped) = self.peek(0)
            {
                self.bump(escaped.len_utf8());
            }
        }
        self.pos
    }

    /// Lexes `#"..."#` with any number of `#`. The body ends at a `"` followed by as many `#`.
    fn lex_raw_string(&mut self) -> Token<'a> {
        let hashes = self.src[self.pos..]
            .find(|c: char| c != '#')
            .unwrap_or(self.src.len() - self.pos);
        self.bump(hashes);
        if self.peek(0) != Some('"') {
            return Token::Punct('#');
        }
        self.bump(1);
        let body_start = self.pos;
        let closing = format!("\"{}", "#".repeat(hashes));
        match self.src[body_start..].find(&closing) {
            Some(len) => {
                self.pos = body_start + len + closing.len();
                Token::Str(&self.src[body_start..body_start + len])
            }
            None => {
                self.pos = self.src.len();
                Token::Str(&self.src[body_start..])
            }
        }
    }

    /// Skips the text of a backtick string up to its end or up to a `${` interpolation.
    fn skip_backtick_text(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == '`' {
                self.bump(1);
                self.modes.pop();
                return;
            }
            if c == '$' && self.peek(1) == Some('{') {
                self.bump(2);
                self.modes.push(Mode::Interpolation { depth: 0 });
                return;
            }
            self.bump(c.len_utf8());
        }
        // An unterminated backtick string ends the text.
        self.modes.clear();
    }

    fn skip_line_comment(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.find('\n').unwrap_or(rest.len());
    }

    /// Skips a `/* */` comment. Rhai block comments nest.
    fn skip_block_comment(&mut self) {
        self.bump(2);
        let mut depth = 1;
        while depth > 0 {
            let rest = &self.src[self.pos..];
            if rest.starts_with("/*") {
                depth += 1;
                self.bump(2);
            } else if rest.starts_with("*/") {
                depth -= 1;
                self.bump(2);
            } else if let Some(c) = rest.chars().next() {
                self.bump(c.len_utf8());
            } else {
                return;
            }
        }
    }

    fn peek(&self, skip: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(skip)
    }

    fn bump(&mut self, bytes: usize) {
        self.pos += bytes;
    }
}

/// Finds the `}}` that closes a template expression whose text starts at byte offset `start`.
/// Braces and strings inside the expression are skipped, so `#{a: #{b: 1}}` and `"}}"` do not
/// end it. Returns the byte offset of that `}}`, or `None` when the text ends first.
pub(super) fn find_expression_end(text: &str, start: usize) -> Option<usize> {
    let mut lexer = Lexer::new(text, start);
    let mut depth = 0usize;
    while let Some((offset, token)) = lexer.next_token() {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') if depth > 0 => depth -= 1,
            Token::Punct('}') if text[offset + 1..].starts_with('}') => return Some(offset),
            _ => {}
        }
    }
    None
}

/// Appends the names `X` read as `secrets.X`, `secrets?.X`, `secrets["X"]` or `secrets?["X"]`
/// in Rhai code to `names`, in order of first use and without duplicates.
pub(super) fn secrets_in_code(code: &str, names: &mut Vec<String>) {
    let mut lexer = Lexer::new(code, 0);
    let mut tokens = Vec::new();
    while let Some((_, token)) = lexer.next_token() {
        tokens.push(token);
    }
    for (index, token) in tokens.iter().enumerate() {
        if *token != Token::Ident("secrets") {
            continue;
        }
        // `x.secrets` and `m::secrets` name something else.
        let previous = index.checked_sub(1).map(|i| tokens[i]);
        if matches!(previous, Some(Token::Punct('.' | ':'))) {
            continue;
        }
        if let Some(name) = accessed_name(&tokens[index + 1..])
            && !names.iter().any(|known| known == name)
        {
            names.push(name.to_string());
        }
    }
}

/// Reads the property or literal index that follows a variable: `.X`, `?.X`, `["X"]`, `?["X"]`.
fn accessed_name<'a>(after: &[Token<'a>]) -> Option<&'a str> {
    let after = match after {
        [Token::Punct('?'), rest @ ..] => rest,
        rest => rest,
    };
    match after {
        [Token::Punct('.'), Token::Ident(name), ..] => Some(name),
        [Token::Punct('['), rest @ ..] => literal_index(rest),
        _ => None,
    }
}

fn literal_index<'a>(after_bracket: &[Token<'a>]) -> Option<&'a str> {
    match after_bracket {
        // A key with escapes is skipped: environment variable names do not need them.
        [Token::Str(name), Token::Punct(']'), ..] if !name.contains('\\') => Some(name),
        _ => None,
    }
}

/// Converts a byte offset in `text` to a 1-based line and column, counting columns in
/// characters.
pub(super) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
