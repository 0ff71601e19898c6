//! Every error code the API can answer is listed in the README's error list.
//!
//! The codes are collected from the source, not from a hand-kept list, so a new code fails this
//! test until it is documented:
//! - `shared/api/src/**/*.rs`: the code argument of `ApiError::new(..)`, `Self::new(..)` in
//!   `error.rs` and `unprocessable(..)`, every `StatusCode::X, "code"` pair (also the tuples
//!   `(StatusCode, &str, String)` the request limits build), and the `FieldProblem` arms of the
//!   `SyncError` mapping;
//! - `shared/domain/src/**/*.rs`: the code of `DomainError::new(field, "code", ..)` (answered as
//!   422 through `From<DomainError> for ApiError`);
//! - `shared/providers/*/src/**/*.rs`: the code of `.with_code(..)` (a literal, a `codes::X`
//!   constant, or `self.code()` of `BasecampFailure`), which the API answers instead of the
//!   kind's generic code.
//!
//! A code argument that is not a literal must be one of the few accounted for in
//! [`KNOWN_INDIRECT_CODES`]; any other form fails the test, so the scan cannot silently miss
//! codes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Code arguments that are not literals, by file name and expression, with where their
/// values are collected instead.
const KNOWN_INDIRECT_CODES: &[(&str, &str)] = &[
    // `From<DomainError>`: the domain's codes, scanned in shared/domain.
    ("error.rs", "e.code"),
    // The `FieldProblem` match: its arms are scanned.
    ("error.rs", "code"),
    // `uri_too_long()` / `headers_too_large()` tuples: scanned as `StatusCode::X, "code"`.
    ("limits.rs", "code"),
];

/// Wildcard families the README documents as patterns instead of one code each: a code
/// matching one is listed when the README lists the pattern itself.
const README_PATTERNS: &[(&str, &str)] = &[("", "_in_use"), ("unknown_", "")];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// `src` with comments blanked out (strings and char literals kept), so doc comments naming
/// codes do not count and `//` inside strings is not taken for a comment.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                        i += 1;
                    }
                }
            }
            b'"' => {
                let end = string_end(b, i);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'\'' => {
                // A char literal (`'"'`, `'\''`) or a lifetime (`'static`).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    let mut j = i + 2;
                    while j < b.len() && b[j] != b'\'' {
                        j += 1;
                    }
                    j + 1
                } else if b.get(i + 2) == Some(&b'\'') {
                    i + 3
                } else {
                    i + 1
                };
                out.extend_from_slice(&b[i..end.min(b.len())]);
                i = end;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("only ASCII was replaced")
}

/// The index just past the string literal opening at `b[start] == '"'`.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// The value of `expr` when it is exactly one plain string literal.
fn literal(expr: &str) -> Option<&str> {
    let inner = expr.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['"', '\\'])).then_some(inner)
}

/// The top-level arguments of the call whose `(` is just before `src[at..]`, trimmed.
fn call_args(src: &str, at: usize) -> Vec<&str> {
    let b = src.as_bytes();
    let mut args = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, at, at);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = string_end(b, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth > 0 => depth -= 1,
            b')' | b']' | b'}' => {
                let last = src[start..i].trim();
                if !last.is_empty() {
                    args.push(last);
                }
                return args;
            }
            b',' if depth == 0 => {
                args.push(src[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    args
}

/// Each call of `callee(` in `src` that is not its definition (`fn callee(`): the arguments.
fn calls<'a>(src: &'a str, callee: &str) -> Vec<Vec<&'a str>> {
    let needle = format!("{callee}(");
    src.match_indices(&needle)
        .filter(|&(i, _)| {
            let before = &src[..i];
            // A whole name (`Self::new(` is not `MySelf::new(`), and not the definition.
            let whole = callee.starts_with('.')
                || !before
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
            whole && !before.trim_end().ends_with("fn")
        })
        .map(|(i, _)| call_args(src, i + needle.len()))
        .collect()
}

/// What one file's code arguments came to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    codes: BTreeSet<String>,
    /// Non-literal code arguments: `(file name, expression)`.
    indirect: BTreeSet<(String, String)>,
}

impl Scan {
    fn arg(&mut self, file: &str, expr: Option<&str>) {
        let Some(expr) = expr else { return };
        match literal(expr) {
            Some(code) => {
                self.codes.insert(code.to_owned());
            }
            None => {
                self.indirect.insert((file.to_owned(), expr.to_owned()));
            }
        }
    }
}

/// The codes of one file of shared/api (comments already stripped).
fn scan_api(file: &str, src: &str, scan: &mut Scan) {
    for args in calls(src, "ApiError::new") {
        scan.arg(file, args.get(1).copied());
    }
    if file == "error.rs" {
        for args in calls(src, "Self::new") {
            scan.arg(file, args.get(1).copied());
        }
    }
    for args in calls(src, "unprocessable") {
        scan.arg(file, args.first().copied());
    }
    // `StatusCode::X, "code"`, also in tuples that reach `ApiError::new` through a variable.
    for (i, _) in src.match_indices("StatusCode::") {
        let rest = &src[i + "StatusCode::".len()..];
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if let Some(rest) = rest.trim_start().strip_prefix(',') {
            let rest = rest.trim_start();
            if rest.starts_with('"') {
                let end = string_end(rest.as_bytes(), 0);
                if let Some(code) = literal(&rest[..end]) {
                    scan.codes.insert(code.to_owned());
                }
            }
        }
    }
    // The `FieldProblem` match of the `SyncError` mapping: `F::Missing => "required"`.
    if let Some(i) = src.find("FieldProblem as F") {
        let block = &src[i..];
        let block = &block[..block.find("};").expect("the FieldProblem match ends")];
        for (j, _) in block.match_indices("=>") {
            let rest = block[j + 2..].trim_start();
            if rest.starts_with('"') {
                let end = string_end(rest.as_bytes(), 0);
                if let Some(code) = literal(&rest[..end]) {
                    scan.codes.insert(code.to_owned());
                }
            }
        }
    }
}

/// The codes of one file of shared/domain.
fn scan_domain(file: &str, src: &str, scan: &mut Scan) {
    for args in calls(src, "DomainError::new") {
        scan.arg(file, args.get(1).copied());
    }
}

/// The value of `const NAME: &str = "..."` in `srcs`.
fn const_value(srcs: &[String], name: &str) -> Option<String> {
    let needle = format!("const {name}: &str =");
    srcs.iter().find_map(|src| {
        let rest = src[src.find(&needle)? + needle.len()..].trim_start();
        let end = string_end(rest.as_bytes(), 0);
        literal(&rest[..end]).map(str::to_owned)
    })
}

/// The codes `.with_code(..)` sets in one provider crate (its files, comments stripped).
fn scan_provider(crate_srcs: &[String]) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for src in crate_srcs {
        for args in calls(src, ".with_code") {
            let [arg] = args[..] else {
                panic!("with_code takes one argument: {args:?}")
            };
            if let Some(code) = literal(arg) {
                codes.insert(code.to_owned());
            } else if let Some(name) = arg.strip_prefix("codes::") {
                let code = const_value(crate_srcs, name)
                    .unwrap_or_else(|| panic!("no `const {name}: &str` in the crate"));
                codes.insert(code);
            } else if arg == "self.code()" {
                // `BasecampFailure::code()`: its marker with the prefix trimmed.
                let fn_at = src.find("fn code(self)").expect("the code() it calls");
                let body = &src[fn_at..];
                let key = "trim_start_matches(";
                let prefix_at = body.find(key).expect("code() trims a marker prefix") + key.len();
                let prefix = literal(call_args(body, prefix_at)[0]).expect("a literal prefix");
                // The markers are the literals of the function `code()` trims: `self.marker()`.
                let inner = body[..prefix_at]
                    .rsplit("self.")
                    .next()
                    .and_then(|s| s.split('(').next())
                    .expect("code() trims self.marker()");
                let marker_fn = format!("fn {inner}(self)");
                let marker_body = &src[src.find(&marker_fn).expect("the marker function")..];
                let marker_body = &marker_body[..marker_body[1..]
                    .find("fn ")
                    .map_or(marker_body.len(), |e| e + 1)];
                for (i, _) in marker_body.match_indices(&format!("\"{prefix}")) {
                    let end = string_end(marker_body.as_bytes(), i);
                    let marker = literal(&marker_body[i..end]).expect("a plain marker literal");
                    codes.insert(marker[prefix.len()..].to_owned());
                }
            } else {
                panic!("with_code({arg}): a form this scan does not resolve; teach it");
            }
        }
    }
    codes
}

/// Every code the source can answer, and the non-literal code arguments met.
fn collect() -> Scan {
    let root = root();
    let mut scan = Scan::default();
    for (dir, scan_file) in [
        ("shared/api/src", scan_api as fn(&str, &str, &mut Scan)),
        ("shared/domain/src", scan_domain),
    ] {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        assert!(!files.is_empty(), "no sources under {dir}");
        for path in files {
            let src = strip_comments(&std::fs::read_to_string(&path).unwrap());
            let name = path.file_name().unwrap().to_str().unwrap();
            scan_file(name, &src, &mut scan);
        }
    }
    let mut providers: Vec<_> = std::fs::read_dir(root.join("shared/providers"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    providers.sort();
    for src_dir in providers {
        let mut files = Vec::new();
        rust_files(&src_dir, &mut files);
        let srcs: Vec<String> = files
            .iter()
            .map(|p| strip_comments(&std::fs::read_to_string(p).unwrap()))
            .collect();
        scan.codes.extend(scan_provider(&srcs));
    }
    scan
}

/// The README's error list: the bullet starting "Errors are `{"error": ...`", up to the next
/// bullet.
fn readme_error_list() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("- Errors are `{\"error\"")
        .expect("README has the error list bullet");
    let rest = &readme[start + 2..];
    let end = rest.find("\n- ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Whether `code` is listed in `list` as `` `code` ``, or through a documented wildcard family.
fn listed(list: &str, code: &str) -> bool {
    list.contains(&format!("`{code}`"))
        || README_PATTERNS.iter().any(|&(prefix, suffix)| {
            code.len() > prefix.len() + suffix.len()
                && code.starts_with(prefix)
                && code.ends_with(suffix)
                && list.contains(&format!("`{prefix}*{suffix}`"))
        })
}

#[test]
fn every_error_code_the_api_can_answer_is_listed_in_the_readme() {
    let scan = collect();
    // The scan finds what it must: a scanner that finds nothing would pass vacuously.
    for code in [
        "payload_too_large",
        "uri_too_long",
        "headers_too_large",
        "invalid_path",
        "invalid_request",
        "managed_by_provider",
        "addon_not_enabled",
        "test_required",
        "invalid_token",
        "no_basecamp_account",
        "required",
        "invalid_sync_at",
        "tripletex_not_configured",
        "invalid_email",
    ] {
        assert!(
            scan.codes.contains(code),
            "the scan missed {code}: {:?}",
            scan.codes
        );
    }
    let known: BTreeSet<(String, String)> = KNOWN_INDIRECT_CODES
        .iter()
        .map(|&(f, e)| (f.to_owned(), e.to_owned()))
        .collect();
    assert_eq!(
        scan.indirect, known,
        "a code argument that is not a literal: collect its values here and list it in \
         KNOWN_INDIRECT_CODES"
    );

    let list = readme_error_list();
    let missing: Vec<_> = scan.codes.iter().filter(|c| !listed(&list, c)).collect();
    assert!(
        missing.is_empty(),
        "error codes missing from README.md's error list (\"Using the local API\"): {missing:?}"
    );
}

#[test]
fn the_scanner_finds_codes_in_a_sample_and_skips_comments() {
    let src = strip_comments(
        r#"
        // ApiError::new(StatusCode::GONE, "in_a_comment", "x")
        /* unprocessable("in_a_block") */
        pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {}
        fn f() -> ApiError {
            let _ = matches!(c, '"' | '\'');
            let url = "https://example.com/";
            ApiError::new(
                StatusCode::CONFLICT,
                "sample_conflict",
                format!("a {}, b", 1),
            );
            ApiError::unprocessable("sample_rule", "message");
            (StatusCode::URI_TOO_LONG, "sample_tuple", String::new())
        }
        fn g(code: &'static str) -> ApiError {
            ApiError::new(StatusCode::GONE, code, "m")
        }
        "#,
    );
    let mut scan = Scan::default();
    scan_api("sample.rs", &src, &mut scan);
    let codes: Vec<_> = scan.codes.iter().map(String::as_str).collect();
    assert_eq!(codes, ["sample_conflict", "sample_rule", "sample_tuple"]);
    assert_eq!(
        scan.indirect.into_iter().collect::<Vec<_>>(),
        [("sample.rs".to_owned(), "code".to_owned())]
    );

    let provider = [strip_comments(
        r#"
        pub mod codes { pub const GONE: &str = "sample_gone"; }
        enum Failure { A }
        impl Failure {
            fn marker(self) -> &'static str { match self { Self::A => "p:sample_marker" } }
            fn error(self) -> E { err().with_code(self.code()) }
            pub fn code(self) -> &'static str { self.marker().trim_start_matches("p:") }
        }
        fn h() { e.with_code(codes::GONE); e.with_code("sample_literal"); }
        "#,
    )];
    let codes: Vec<_> = scan_provider(&provider).into_iter().collect();
    assert_eq!(codes, ["sample_gone", "sample_literal", "sample_marker"]);
}

#[test]
fn a_code_missing_from_the_list_is_caught_and_patterns_are_explicit() {
    let list = "400 `invalid_query`; 409 `*_in_use`; 422 `unknown_*`";
    assert!(listed(list, "invalid_query"));
    assert!(
        !listed(list, "invalid"),
        "a prefix of a listed code is not listed"
    );
    assert!(!listed(list, "brand_new_code"));
    assert!(listed(list, "project_in_use"));
    assert!(listed(list, "unknown_parent"));
    assert!(
        !listed(list, "_in_use"),
        "the bare pattern affix is not a code"
    );
    assert!(
        !listed("409 `conflict`", "project_in_use"),
        "patterns count only when listed"
    );
}
