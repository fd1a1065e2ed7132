//! The layering guard: imports between the crate's top-level modules run one way.
//!
//! Every top-level module has a layer ([`LAYERS`]); a module may name (`crate::x`, in a
//! `use` or inline, in code or tests, comments aside) modules of its own layer or of lower
//! ones, never a higher one. Peers of one layer may import each other, but not in a cycle;
//! the modules of the top layers in [`INDEPENDENT`] (the engines and commands) may not
//! import each other at all: what they share lives below them.
//! The binary is a separate crate and reaches the library through `vectro::`.
//!
//! Edges still to be removed are listed in [`KNOWN_BACKWARD`], which may only shrink: the
//! test fails on a backward edge missing from it, and on a listed edge that no longer
//! exists. Run with `cargo test --lib layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module (a file `src/x.rs` or folder `src/x/`) and its layer, lowest
/// first. A module missing from this table fails the test: give a new module its place.
const LAYERS: &[(&str, u8)] = &[
    // Ground: no imports from anywhere else in the crate but each other.
    ("error", 0),
    ("progress", 0),
    ("checksum", 0),
    ("par", 0),
    ("input", 0),
    ("mapping", 0),
    ("test_rng", 0),
    // Kernels: plain slices and parameters.
    ("simd", 1),
    // Codecs: arrays of floats to payload bytes and back.
    ("codec", 2),
    // File formats: the container, .npy, output files.
    ("npy", 3),
    ("output", 3),
    ("format", 3),
    // Reading datasets: mmap .npy, directories and globs, stdin.
    ("source", 4),
    // The encode core (worker and writer stages) shared by compress and stream.
    ("encode", 5),
    // The scan engine over a container's codes, shared by eval and `vectro search`.
    ("search", 5),
    // Measuring codecs on data: `eval`, `bench`, and the whole-input pass with which
    // `compress --codec auto` decides.
    ("eval", 6),
    // The engines and commands built on all of the above.
    ("pipeline", 7),
    ("stream", 7),
    ("merge", 7),
    ("npz", 7),
    ("generate", 7),
    ("serve", 7),
    ("layers", 7),
    // The fuzz harnesses, which drive the engines' parsers (npz's import among them); the
    // report, built on eval and on compress (to try codecs on a sample); and the crate
    // root, which re-exports what a user needs.
    ("fuzzing", 8),
    ("report", 8),
    ("lib", 8),
];

/// Layers whose modules may not import each other.
const INDEPENDENT: &[u8] = &[7];

/// Backward edges (and same-layer cycles) tolerated for now, `(from, to)`: none is left.
/// An edge put here must say why, and the test fails once it no longer exists.
const KNOWN_BACKWARD: &[(&str, &str)] = &[];

/// One `crate::x` (or `super::…::x` reaching the crate root) in a file.
struct Reference {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
}

#[test]
fn imports_run_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("read src/lib.rs");
    let root_items = root_reexports(&lib);

    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut problems = Vec::new();
    let mut refs = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under src");
        let from = top_module(rel);
        if !layer.contains_key(from.as_str()) {
            problems.push(format!(
                "{}: module `{from}` has no layer in src/layers.rs's LAYERS",
                rel.display()
            ));
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (line, name) in crate_references(&text, file_depth(rel)) {
            // A root item re-exported by lib.rs counts as the module it comes from.
            let to = match root_items.get(&name) {
                Some(m) => m.clone(),
                None if layer.contains_key(name.as_str()) => name,
                None => continue,
            };
            if to != from {
                refs.push(Reference {
                    file: rel.to_path_buf(),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }

    let allowed: BTreeSet<(&str, &str)> = KNOWN_BACKWARD.iter().copied().collect();
    let edges: BTreeSet<(&str, &str)> = refs
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str()))
        .collect();
    let cyclic = same_layer_cycles(&edges, &layer);
    for r in &refs {
        let (a, b) = (layer[r.from.as_str()], layer[r.to.as_str()]);
        let edge = (r.from.as_str(), r.to.as_str());
        if allowed.contains(&edge) {
            continue;
        }
        if a == b && INDEPENDENT.contains(&a) {
            problems.push(format!(
                "src/{}:{}: `{}` uses `{}`, its peer in layer {a}, whose modules are independent",
                r.file.display(),
                r.line,
                r.from,
                r.to
            ));
        } else if a < b {
            problems.push(format!(
                "src/{}:{}: `{}` (layer {a}) uses `{}` (layer {b}), a higher layer",
                r.file.display(),
                r.line,
                r.from,
                r.to
            ));
        } else if cyclic.contains(&edge) {
            problems.push(format!(
                "src/{}:{}: `{}` uses `{}`, which uses it back (layer {a}): a cycle",
                r.file.display(),
                r.line,
                r.from,
                r.to
            ));
        }
    }
    for &(a, b) in KNOWN_BACKWARD {
        if !edges.contains(&(a, b)) {
            problems.push(format!(
                "KNOWN_BACKWARD lists `{a}` -> `{b}`, which no longer exists: remove it"
            ));
        }
        let (la, lb) = (layer.get(a), layer.get(b));
        let peers = la == lb && la.is_some_and(|l| INDEPENDENT.contains(l));
        if la < lb || peers || cyclic.contains(&(a, b)) {
            continue;
        }
        problems.push(format!(
            "KNOWN_BACKWARD lists `{a}` -> `{b}`, which goes down and is allowed: remove it"
        ));
    }
    assert!(
        problems.is_empty(),
        "backward imports:\n{}",
        problems.join("\n")
    );
}

/// Every `.rs` file under `dir`, except the binary's (`src/bin`, a crate of its own).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read a source folder")
        .map(|e| e.expect("a folder entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if !p.ends_with("src/bin") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to: `codec` for `codec/int8.rs`, `lib` for `lib.rs`.
fn top_module(rel: &Path) -> String {
    let first = rel.components().next().expect("a file name");
    let first = first.as_os_str().to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// How many modules deep a file's items are: 1 for `x.rs` and `x/mod.rs`, 2 for
/// `x/y.rs`, 0 for `lib.rs`.
fn file_depth(rel: &Path) -> usize {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.last().expect("a file name");
    match last.as_str() {
        "lib.rs" if parts.len() == 1 => 0,
        "mod.rs" => parts.len() - 1,
        _ => parts.len(),
    }
}

/// `name -> module` for every item lib.rs re-exports (`pub use codec::{Codec, ...}`).
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let toks = tokens(lib);
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i + 2 < toks.len() {
        if toks[i].1 == Tok::Ident("pub".into()) && toks[i + 1].1 == Tok::Ident("use".into()) {
            let mut j = i + 2;
            let mut module = None;
            while j < toks.len() && toks[j].1 != Tok::Punct(';') {
                if let Tok::Ident(name) = &toks[j].1 {
                    let path_segment = toks.get(j + 1).map(|t| &t.1) == Some(&Tok::Punct(':'));
                    match module {
                        None if name != "crate" => module = Some(name.clone()),
                        Some(ref m) if !path_segment && name != "as" && name != "self" => {
                            out.insert(name.clone(), m.clone());
                        }
                        _ => {}
                    }
                }
                j += 1;
            }
            i = j;
        }
        i += 1;
    }
    out
}

/// The root items a file names, with their lines: `crate::x` and `$crate::x` (and each
/// first segment of `crate::{x, y::z}`), and `super::…::x` with enough `super`s to reach
/// the root from a file `depth` modules deep (inline `mod m { … }` blocks count).
fn crate_references(text: &str, depth: usize) -> Vec<(usize, String)> {
    let toks = tokens(text);
    let mut out = Vec::new();
    let ident = |i: usize| match toks.get(i) {
        Some((_, Tok::Ident(s))) => Some(s.as_str()),
        _ => None,
    };
    let punct = |i: usize, c: char| matches!(toks.get(i), Some((_, Tok::Punct(p))) if *p == c);
    let path_sep = |i: usize| punct(i, ':') && punct(i + 1, ':');
    let mut braces = 0usize;
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].1 {
            Tok::Punct('{') => braces += 1,
            Tok::Punct('}') => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            Tok::Ident(w) if w == "mod" && ident(i + 1).is_some() && punct(i + 2, '{') => {
                inline_mods.push(braces);
            }
            Tok::Ident(w) if (w == "crate" || w == "super") && path_sep(i + 1) => {
                // Not `x::crate`/`x::super`: those are mid-path.
                if i >= 2 && path_sep(i - 2) {
                    i += 1;
                    continue;
                }
                let mut j = i;
                let mut supers = 0;
                while ident(j) == Some("super") && path_sep(j + 1) {
                    supers += 1;
                    j += 3;
                }
                let reaches_root = if w == "crate" {
                    j = i + 3;
                    true
                } else {
                    supers >= depth + inline_mods.len()
                };
                if reaches_root {
                    let line = toks[i].0;
                    if punct(j, '{') {
                        // `{a, b::c, self}`: the first segment after `{` or a top-level `,`.
                        let (mut nest, mut k, mut first) = (0, j, true);
                        while k < toks.len() {
                            match &toks[k].1 {
                                Tok::Punct('{') => nest += 1,
                                Tok::Punct('}') => {
                                    nest -= 1;
                                    if nest == 0 {
                                        break;
                                    }
                                }
                                Tok::Punct(',') if nest == 1 => first = true,
                                Tok::Ident(s) if nest == 1 && first => {
                                    if s != "self" {
                                        out.push((toks[k].0, s.clone()));
                                    }
                                    first = false;
                                }
                                _ => {}
                            }
                            k += 1;
                        }
                    } else if let Some(s) = ident(j) {
                        out.push((line, s.to_string()));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
}

/// The identifiers and punctuation of Rust source, with their lines; comments, strings
/// and character literals are skipped.
fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    // Skips from `c[i]` (inside a quoted literal) to past `close`, honouring escapes.
    let skip_quoted = |mut i: usize, line: &mut usize, close: char| {
        while i < c.len() && c[i] != close {
            if c[i] == '\\' {
                i += 1;
            }
            if c.get(i) == Some(&'\n') {
                *line += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut nest = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    nest += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    nest -= 1;
                    i += 2;
                    if nest == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_quoted(i + 1, &mut line, '"');
        } else if ch == '\'' {
            if c.get(i + 1) == Some(&'\\') {
                i = skip_quoted(i + 1, &mut line, '\'');
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                // A lifetime or label.
                out.push((line, Tok::Punct('\'')));
                i += 1;
            }
        } else if is_ident(ch) {
            let start = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            if raw_prefix && matches!(c.get(i), Some('"' | '#')) {
                // A raw string: r"…", r#"…"#, …
                let mut hashes = 0;
                while c.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if c.get(i) == Some(&'"') {
                    i += 1;
                    loop {
                        if i >= c.len() {
                            break;
                        }
                        if c[i] == '"' && (1..=hashes).all(|h| c.get(i + h) == Some(&'#')) {
                            i += 1 + hashes;
                            break;
                        }
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    continue;
                }
                // `r#ident`: a raw identifier.
                out.push((line, Tok::Ident(word)));
            } else if matches!(word.as_str(), "b" | "c") && c.get(i) == Some(&'"') {
                i = skip_quoted(i + 1, &mut line, '"');
            } else if word == "b" && c.get(i) == Some(&'\'') {
                i = skip_quoted(i + 1, &mut line, '\'');
            } else {
                out.push((line, Tok::Ident(word)));
            }
        } else {
            out.push((line, Tok::Punct(ch)));
            i += 1;
        }
    }
    out
}

/// The same-layer edges that lie on a cycle: `a -> b` where `b` reaches `a` back through
/// modules of that layer.
fn same_layer_cycles<'a>(
    edges: &BTreeSet<(&'a str, &'a str)>,
    layer: &BTreeMap<&str, u8>,
) -> BTreeSet<(&'a str, &'a str)> {
    let same: Vec<(&str, &str)> = edges
        .iter()
        .copied()
        .filter(|(a, b)| layer.get(a) == layer.get(b))
        .collect();
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m) {
                stack.extend(same.iter().filter(|e| e.0 == m).map(|e| e.1));
            }
        }
        false
    };
    same.iter()
        .copied()
        .filter(|&(a, b)| reaches(b, a))
        .collect()
}

#[test]
fn the_scanner_finds_paths_and_skips_comments_and_strings() {
    let src = r##"
        use crate::codec::{self, Codec};
        use crate::{error::Result, simd};
        // use crate::pipeline;
        /* crate::stream /* nested */ crate::eval */
        let s = "crate::merge";
        let r = r#"crate::npz " still "#;
        let c = '"'; let l: &'static str = "x";
        fn f() { crate::format::crc(b"crate::generate"); $crate::npy::read() }
        pub(crate) fn g() { super::super::input::open() }
        mod inner { fn h() { super::super::output::x() } }
    "##;
    let got: Vec<(usize, String)> = crate_references(src, 2);
    let want = [
        (2, "codec"),
        (3, "error"),
        (3, "simd"),
        (9, "format"),
        (9, "npy"),
        (10, "input"),
    ];
    let got: Vec<(usize, &str)> = got.iter().map(|(l, s)| (*l, s.as_str())).collect();
    assert_eq!(got, want);
    // One more `super` inside the inline module reaches the root.
    let deeper = "mod inner { fn h() { super::super::super::output::x() } }";
    assert_eq!(crate_references(deeper, 2), [(1, "output".to_string())]);
    let lib = "pub use codec::{Codec, CodecId};\npub use crate::format::Container as C;";
    let items = root_reexports(lib);
    assert_eq!(items["Codec"], "codec");
    assert_eq!(items["C"], "format");
}
