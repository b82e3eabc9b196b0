//! Every module of a package parses: checked whenever a package is built (upload,
//! `atoll exec`, `atoll dev`'s deploys) with a JavaScript parser written in Rust (oxc), so
//! no JS engine ever runs on tenant code in the server. A syntax error names the file,
//! the line and the column (1-based, in characters), and what the parser expected.

use std::collections::BTreeMap;
use std::sync::Arc;

use oxc_allocator::Allocator;
use oxc_parser::Parser;
use oxc_span::SourceType;

use super::{is_module, PackageError, PackageErrorKind};

/// Refuses the package at the first module that does not parse as an ES module.
pub(super) fn check_syntax(files: &BTreeMap<String, Arc<str>>) -> Result<(), PackageError> {
    for (path, source) in files.iter().filter(|(p, _)| is_module(p)) {
        let allocator = Allocator::default();
        let parsed = Parser::new(&allocator, source, SourceType::mjs()).parse();
        let Some(error) = parsed.diagnostics.errors().next() else {
            continue;
        };
        let at = error
            .labels
            .first()
            .map_or(0, |label| label.offset() as usize);
        let (line, column) = line_and_column(source, at);
        let mut message = format!("line {line}, column {column}: {}", error.message);
        if let Some(help) = &error.help {
            message.push_str(&format!(" ({help})"));
        }
        return Err(PackageError::at(PackageErrorKind::Syntax, path, message));
    }
    Ok(())
}

/// The 1-based line and column of byte `offset` in `source`.
fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset.min(source.len())).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Arc<str>> {
        pairs
            .iter()
            .map(|(p, s)| (p.to_string(), Arc::from(*s)))
            .collect()
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let bad = files(&[
            ("main.js", "export default () => 1;\n"),
            ("lib/util.js", "export const a = 1;\nexport const b = (;\n"),
        ]);
        let err = check_syntax(&bad).unwrap_err();
        assert_eq!(err.kind, PackageErrorKind::Syntax);
        assert_eq!(err.file.as_deref(), Some("lib/util.js"));
        assert!(
            err.reason.starts_with("line 2, column 19:"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn modules_with_top_level_await_and_non_modules_pass() {
        let good = files(&[
            (
                "main.js",
                "const x = await Promise.resolve(1);\nexport default () => x;\n",
            ),
            ("data.json", "{ not js"),
            ("README.md", "# (((("),
        ]);
        check_syntax(&good).expect("valid");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_and_column("é = 1;\nab", 9), (2, 2));
        assert_eq!(line_and_column("", 5), (1, 1));
    }
}
