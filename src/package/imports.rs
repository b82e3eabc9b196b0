//! A lexer-level scan for import specifiers, used to refuse bad imports at upload. It is not
//! a parser: it tokenises well enough to skip comments, strings, template literals and
//! regular expressions, then matches the few token shapes that import a module. The engine
//! checks again at run time, so a miss here costs a late error, not a hole.

/// Keywords after which a `/` starts a regular expression rather than a division.
const KEYWORDS_BEFORE_EXPRESSION: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

/// An import or export clause longer than this is not real code; stop looking.
const MAX_CLAUSE_TOKENS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A string literal, or a template literal without substitutions, decoded.
    Str(String),
    Punct(u8),
    /// `...`, kept apart from `.` so that `...import("x")` is not taken for a member access.
    Spread,
    /// The head of a template literal: an expression follows.
    TemplateHead,
    /// A number, a regular expression, or the tail of a template literal.
    Value,
}

/// The specifiers of static `import ... from "x"`, `import "x"`, `export ... from "x"`
/// and of dynamic `import("x")` with a string literal (or plain template) argument, in
/// order of first appearance, each once. Dynamic imports of computed values are not listed.
pub fn scan_imports(source: &str) -> Vec<String> {
    let toks = Lexer::new(source).run();
    let mut out: Vec<String> = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        let Tok::Ident(word) = tok else { continue };
        if i > 0 && toks[i - 1] == Tok::Punct(b'.') {
            continue; // `x.import(...)`, `obj.export`
        }
        let found = match (word.as_str(), toks.get(i + 1)) {
            ("import", Some(Tok::Punct(b'('))) => match (toks.get(i + 2), toks.get(i + 3)) {
                (Some(Tok::Str(s)), Some(Tok::Punct(b')' | b','))) => Some(s.clone()),
                _ => None,
            },
            ("import", Some(Tok::Str(s))) => Some(s.clone()),
            ("import", Some(Tok::Punct(b'.'))) => None, // import.meta
            ("import", Some(_)) => from_clause(&toks, i + 1),
            ("export", Some(Tok::Punct(b'*' | b'{'))) => from_clause(&toks, i + 1),
            _ => None,
        };
        if let Some(s) = found {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// Walks an import/export clause (`x, { a as b, "c" as d }`, `* as ns`) from `start` up to
/// `from "spec"` and returns the specifier; None when the tokens are not such a clause.
fn from_clause(toks: &[Tok], start: usize) -> Option<String> {
    let mut depth = 0;
    for j in start..toks.len().min(start + MAX_CLAUSE_TOKENS) {
        match &toks[j] {
            Tok::Ident(w) if w == "from" && depth == 0 => {
                if let Some(Tok::Str(s)) = toks.get(j + 1) {
                    return Some(s.clone());
                }
                // Otherwise `from` is a binding name (`import from from "x"`).
            }
            Tok::Ident(w) if depth == 0 && (w == "import" || w == "export") => return None,
            Tok::Ident(_) | Tok::Punct(b',' | b'*') => {}
            Tok::Str(_) if depth == 1 => {}
            Tok::Punct(b'{') if depth == 0 => depth = 1,
            Tok::Punct(b'}') if depth == 1 => depth = 0,
            _ => return None,
        }
    }
    None
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    toks: Vec<Tok>,
    /// One entry per open `{`: true when it is a template literal's `${`.
    braces: Vec<bool>,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        let mut lexer = Lexer {
            src,
            b: src.as_bytes(),
            i: 0,
            toks: Vec::new(),
            braces: Vec::new(),
        };
        if src.starts_with("#!") {
            lexer.skip_line();
        }
        lexer
    }

    fn peek(&self, ahead: usize) -> u8 {
        self.b.get(self.i + ahead).copied().unwrap_or(0)
    }

    fn run(mut self) -> Vec<Tok> {
        while self.i < self.b.len() {
            let c = self.b[self.i];
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => self.i += 1,
                b'/' if self.peek(1) == b'/' => self.skip_line(),
                b'/' if self.peek(1) == b'*' => self.skip_block_comment(),
                b'/' if self.regex_allowed() => self.regex(),
                b'\'' | b'"' => self.string(c),
                b'`' => {
                    self.i += 1;
                    self.template(true);
                }
                b'{' => {
                    self.braces.push(false);
                    self.punct(c);
                }
                b'}' => {
                    if self.braces.pop() == Some(true) {
                        self.i += 1;
                        self.template(false);
                    } else {
                        self.punct(c);
                    }
                }
                b'.' if self.peek(1) == b'.' && self.peek(2) == b'.' => {
                    self.toks.push(Tok::Spread);
                    self.i += 3;
                }
                b'.' if self.peek(1).is_ascii_digit() => self.number(),
                b'0'..=b'9' => self.number(),
                _ if is_ident_byte(c) || c == b'#' => self.ident(),
                0x80.. => {
                    let ch = self.src[self.i..].chars().next().unwrap_or(' ');
                    if ch.is_whitespace() || ch == '\u{feff}' {
                        self.i += ch.len_utf8();
                    } else {
                        self.ident();
                    }
                }
                _ => self.punct(c),
            }
        }
        self.toks
    }

    fn punct(&mut self, c: u8) {
        self.toks.push(Tok::Punct(c));
        self.i += 1;
    }

    fn skip_line(&mut self) {
        while self.i < self.b.len() && !matches!(self.b[self.i], b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn skip_block_comment(&mut self) {
        self.i = match self.src[self.i + 2..].find("*/") {
            Some(at) => self.i + 2 + at + 2,
            None => self.b.len(),
        };
    }

    /// Whether a `/` here begins a regular expression, judged by the token before it.
    fn regex_allowed(&self) -> bool {
        let n = self.toks.len();
        match self.toks.last() {
            // `a++ / 2` divides, `x = ++/re/.lastIndex` does not.
            Some(Tok::Punct(p @ (b'+' | b'-'))) if n >= 2 && self.toks[n - 2] == Tok::Punct(*p) => {
                !ends_expression_before(&self.toks[..n - 2])
            }
            _ => !ends_expression_before(&self.toks),
        }
    }

    fn regex(&mut self) {
        let mut j = self.i + 1;
        let mut in_class = false;
        loop {
            match self.b.get(j) {
                // No closing slash on this line: it was a division after all.
                None | Some(b'\n' | b'\r') => return self.punct(b'/'),
                Some(b'\\') => j += 2,
                Some(b'[') => {
                    in_class = true;
                    j += 1;
                }
                Some(b']') => {
                    in_class = false;
                    j += 1;
                }
                Some(b'/') if !in_class => break,
                Some(_) => j += 1,
            }
        }
        j += 1;
        while j < self.b.len() && is_ident_byte(self.b[j]) {
            j += 1; // flags
        }
        self.i = j;
        self.toks.push(Tok::Value);
    }

    fn string(&mut self, quote: u8) {
        let start = self.i + 1;
        let mut j = start;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' if self.b.get(j + 1) == Some(&b'\r') && self.b.get(j + 2) == Some(&b'\n') => {
                    j += 3
                }
                b'\\' => j += 2,
                b'\n' | b'\r' => break, // unterminated; the engine will say so
                c if c == quote => {
                    self.toks.push(Tok::Str(unescape(&self.src[start..j])));
                    self.i = j + 1;
                    return;
                }
                _ => j += 1,
            }
        }
        self.toks.push(Tok::Value);
        self.i = j.min(self.b.len());
    }

    /// Lexes template text from just after "`" (`fresh`) or after a substitution's `}`, up
    /// to the closing "`" or the next `${`.
    fn template(&mut self, fresh: bool) {
        let start = self.i;
        let mut j = start;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' => j += 2,
                b'`' => {
                    self.toks.push(if fresh {
                        Tok::Str(unescape(&self.src[start..j]))
                    } else {
                        Tok::Value
                    });
                    self.i = j + 1;
                    return;
                }
                b'$' if self.b.get(j + 1) == Some(&b'{') => {
                    self.toks.push(Tok::TemplateHead);
                    self.braces.push(true);
                    self.i = j + 2;
                    return;
                }
                _ => j += 1,
            }
        }
        self.toks.push(Tok::Value);
        self.i = self.b.len();
    }

    fn number(&mut self) {
        let start = self.i;
        let hex = self.b[start] == b'0' && matches!(self.peek(1), b'x' | b'X');
        let mut j = start;
        while j < self.b.len() {
            let c = self.b[j];
            let exponent_sign =
                !hex && matches!(c, b'+' | b'-') && matches!(self.b[j - 1], b'e' | b'E');
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exponent_sign {
                j += 1;
            } else {
                break;
            }
        }
        self.i = j;
        self.toks.push(Tok::Value);
    }

    fn ident(&mut self) {
        let start = self.i;
        let mut j = start + self.src[start..].chars().next().map_or(1, char::len_utf8);
        while j < self.b.len() {
            let c = self.b[j];
            if is_ident_byte(c) || c == b'\\' {
                j += 1;
            } else if c >= 0x80 {
                let ch = self.src[j..].chars().next().unwrap_or(' ');
                if ch.is_whitespace() || ch == '\u{feff}' {
                    break;
                }
                j += ch.len_utf8();
            } else {
                break;
            }
        }
        self.toks.push(Tok::Ident(self.src[start..j].to_owned()));
        self.i = j;
    }
}

/// Whether the tokens end with a complete operand, so that a `/` next is a division.
fn ends_expression_before(toks: &[Tok]) -> bool {
    match toks.last() {
        None | Some(Tok::TemplateHead | Tok::Spread) => false,
        // `)` and `]` end an expression; `}` more often ends a block than an object
        // literal that is then divided.
        Some(Tok::Punct(p)) => matches!(p, b')' | b']'),
        Some(Tok::Ident(w)) => !KEYWORDS_BEFORE_EXPRESSION.contains(&w.as_str()),
        Some(Tok::Str(_) | Tok::Value) => true,
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// Decodes the escapes of a JS string literal's body. Malformed escapes are kept as
/// written: such a specifier will fail to resolve, which is the right outcome.
fn unescape(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else { break };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '0' => out.push('\0'),
            '\n' | '\u{2028}' | '\u{2029}' => {} // line continuation
            '\r' => {
                chars.next_if_eq(&'\n');
            }
            'x' => push_code(&mut out, &mut chars, 2, "\\x"),
            'u' if chars.peek() == Some(&'{') => {
                chars.next();
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&format!("\\u{{{hex}}}")),
                }
            }
            'u' => push_code(&mut out, &mut chars, 4, "\\u"),
            other => out.push(other),
        }
    }
    out
}

/// Pushes the char of a fixed-width hex escape, or the escape as written if it is bad.
fn push_code(
    out: &mut String,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    width: usize,
    prefix: &str,
) {
    let mut hex = String::new();
    for _ in 0..width {
        match chars.next_if(char::is_ascii_hexdigit) {
            Some(h) => hex.push(h),
            None => break,
        }
    }
    let decoded = (hex.len() == width)
        .then(|| u32::from_str_radix(&hex, 16).ok())
        .flatten()
        .and_then(char::from_u32);
    match decoded {
        Some(ch) => out.push(ch),
        None => {
            out.push_str(prefix);
            out.push_str(&hex);
        }
    }
}
