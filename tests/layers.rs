//! The layering ARCHITECTURE.md states, checked against the code: every
//! `crate::`, `super::` and `self::` path in src/ (test modules aside) must
//! point to a module on a lower line of the "Layers" list, and the files may
//! form at most one circle of imports (a file reaching, through others, back
//! to itself).
//!
//! A path is resolved to the file that defines what it names: the longest
//! module prefix it spells, and through a `mod.rs` that re-exports a child's
//! item (`pub use child::Item`) to that child. A `mod.rs` reaching into its
//! own children is not counted: the room's door knows its rooms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// At most this many circles of file imports (target of issue 29: one).
const MAX_CIRCLES: usize = 0;

struct Module {
    file: PathBuf,
    /// Text with comments, string literals and test modules removed.
    code: String,
    /// Children declared by `mod x;`.
    children: BTreeSet<String>,
    /// Item name → the path it is re-exported from (`pub use a::b::Item`).
    reexports: BTreeMap<String, ModPath>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The "Layers" list of ARCHITECTURE.md: top to bottom, modules on one line
/// independent of each other.
fn layers() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = text
        .find("## Layers")
        .expect("ARCHITECTURE.md has a \"## Layers\" section");
    let section = &text[start..];
    let body = section
        .split("\n```")
        .nth(1)
        .expect("the layers are a fenced block");
    body.lines()
        .skip(1) // the fence's info string
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Removes comments and the contents of string and char literals, keeping
/// the text's shape so braces still pair.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && !ident(b, i) {
            // raw string r"…" or r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // a char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            let close = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(c) => {
                    out.push_str("' '");
                    i = c + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            // copy one UTF-8 character
            let len = src[i..].chars().next().unwrap().len_utf8();
            out.push_str(&src[i..i + len]);
            i += len;
        }
    }
    out
}

/// Whether the byte before `i` continues an identifier.
fn ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Cuts out `#[cfg(test)]` items (test modules and test-only imports).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        // the item ends at its `;` or at the brace closing its first `{`
        let semi = after.find(';');
        let brace = after.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => b + closing(&after[b..]),
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The length through the brace that closes the one `s` starts with.
fn closing(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    s.len()
}

fn module_path(file: &Path) -> ModPath {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let mut parts: ModPath = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A path expression after `crate::` (or `super::`…): every full path it
/// names, braces expanded.
fn expand(s: &str) -> (Vec<ModPath>, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut prefix: ModPath = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'{') {
            let len = closing(&s[i..]);
            let inner = &s[i + 1..i + len - 1];
            let mut paths = Vec::new();
            for item in split_top(inner) {
                let (subs, _) = expand(item);
                for sub in subs {
                    let mut p = prefix.clone();
                    p.extend(sub);
                    paths.push(p);
                }
            }
            return (paths, i + len);
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if start == i {
            return (vec![prefix], i);
        }
        prefix.push(s[start..i].to_string());
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// Splits a brace group's items at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items.into_iter().filter(|i| !i.trim().is_empty()).collect()
}

/// Every absolute module path the file's code names.
fn references(path: &ModPath, m: &Module) -> Vec<ModPath> {
    let code = &m.code;
    let b = code.as_bytes();
    let mut found = Vec::new();
    let parent: ModPath = path[..path.len().saturating_sub(1)].to_vec();
    let mut i = 0;
    while i < b.len() {
        let starts_word = b[i].is_ascii_alphanumeric() || b[i] == b'_';
        if !starts_word || ident(b, i) || (i >= 2 && &b[i - 2..i] == b"::") {
            i += 1;
            continue;
        }
        let word_len = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        if !b[i + word_len..].starts_with(b"::") {
            i += word_len;
            continue;
        }
        let word = &code[i..i + word_len];
        let mut base: Option<ModPath> = match word {
            // the binary's modules (src/cli) reach the library as `esx::`
            "crate" | "esx" => Some(Vec::new()),
            "self" => Some(path.clone()),
            "super" => Some(parent.clone()),
            w if m.children.contains(w) => Some(path.clone()),
            _ => None,
        };
        let mut j = i + word_len + 2;
        if !matches!(word, "crate" | "esx" | "self" | "super") {
            j = i; // the child's name is part of the path
        }
        // super::super::…
        while let Some(up) = base.as_mut().filter(|_| b[j..].starts_with(b"super::")) {
            up.pop();
            j += "super::".len();
        }
        if let Some(base) = base {
            let (paths, len) = expand(&code[j..]);
            for p in paths {
                let mut full = base.clone();
                full.extend(p);
                found.push(full);
            }
            i = j + len.max(1);
        } else {
            i += word_len;
        }
    }
    found
}

/// The module file that defines what `path` names.
fn resolve(modules: &BTreeMap<ModPath, Module>, path: &ModPath, depth: usize) -> Option<ModPath> {
    let mut n = path.len();
    while n > 0 && !modules.contains_key(&path[..n]) {
        n -= 1;
    }
    if n == 0 {
        return None;
    }
    let at = path[..n].to_vec();
    if depth < 8 {
        if let Some(item) = path.get(n) {
            if let Some(from) = modules[&at].reexports.get(item) {
                let mut through = from.clone();
                through.push(item.clone());
                if let Some(t) = resolve(modules, &through, depth + 1) {
                    return Some(t);
                }
            }
        }
    }
    Some(at)
}

fn load() -> BTreeMap<ModPath, Module> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let path = module_path(&file);
        if path == ["lib"] || path == ["main"] {
            continue; // lib.rs and main.rs: the crate's doors
        }
        let raw = std::fs::read_to_string(&file).unwrap();
        let code = without_tests(&strip(&raw));
        let mut children = BTreeSet::new();
        let mut reexports = BTreeMap::new();
        for line in code.lines() {
            let t = line.trim();
            let t = t
                .strip_prefix("pub(crate) ")
                .or(t.strip_prefix("pub "))
                .unwrap_or(t);
            if let Some(name) = t.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                children.insert(name.trim().to_string());
            }
        }
        // `pub use child::…::Item` (braces expanded)
        let mut rest = code.as_str();
        while let Some(at) = rest.find("pub use ") {
            let (paths, len) = expand(&rest[at + 8..]);
            for p in paths {
                if let Some((item, from)) = p.split_last() {
                    let mut abs = match from.first().map(String::as_str) {
                        Some("crate") => Vec::new(),
                        Some("super") => path[..path.len() - 1].to_vec(),
                        Some("self") => path.clone(),
                        _ => path.clone(),
                    };
                    abs.extend(
                        from.iter()
                            .filter(|s| !matches!(s.as_str(), "crate" | "self" | "super"))
                            .cloned(),
                    );
                    reexports.insert(item.clone(), abs);
                }
            }
            rest = &rest[at + 8 + len..];
        }
        modules.insert(
            path,
            Module {
                file,
                code,
                children,
                reexports,
            },
        );
    }
    modules
}

/// File → files it imports (resolved, self and own children left out).
fn graph(modules: &BTreeMap<ModPath, Module>) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut edges = BTreeMap::new();
    for (path, m) in modules {
        let mut to = BTreeSet::new();
        for r in references(path, m) {
            if let Some(t) = resolve(modules, &r, 0) {
                let own_child = t.len() > path.len() && t.starts_with(path);
                if t != *path && !own_child {
                    to.insert(t);
                }
            }
        }
        edges.insert(path.clone(), to);
    }
    edges
}

/// Strongly connected components with more than one file (Tarjan).
fn circles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on: BTreeSet<&'a ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = s.edges.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let l = s.low[w].min(s.low[v]);
                s.low.insert(v, l);
            } else if s.on.contains(w) {
                let l = s.index[w].min(s.low[v]);
                s.low.insert(v, l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut c = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                c.push(w.clone());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                s.out.push(c);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn show(p: &ModPath) -> String {
    p.join("::")
}

#[test]
fn no_import_runs_back_up_the_layers() {
    let layers = layers();
    let level: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, line)| line.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let modules = load();
    let mut faults = Vec::new();
    for top in modules.keys().map(|p| &p[0]).collect::<BTreeSet<_>>() {
        if !level.contains_key(top.as_str()) {
            faults.push(format!("src/{top} is not on ARCHITECTURE.md's layer list"));
        }
    }
    for (from, to) in graph(&modules) {
        for t in to {
            let (a, b) = (from[0].as_str(), t[0].as_str());
            if a == b {
                continue;
            }
            if let (Some(la), Some(lb)) = (level.get(a), level.get(b)) {
                if lb <= la {
                    faults.push(format!(
                        "{} imports {} ({b} is not below {a})",
                        modules[&from].file.strip_prefix(root()).unwrap().display(),
                        show(&t)
                    ));
                }
            }
        }
    }
    assert!(faults.is_empty(), "layering:\n{}", faults.join("\n"));
}

#[test]
fn the_files_form_at_most_the_allowed_circles() {
    let modules = load();
    let found = circles(&graph(&modules));
    let text: Vec<String> = found
        .iter()
        .map(|c| c.iter().map(show).collect::<Vec<_>>().join(" ↔ "))
        .collect();
    assert!(
        found.len().saturating_sub(MAX_CIRCLES) == 0,
        "{} circles of imports (at most {MAX_CIRCLES}):\n{}",
        found.len(),
        text.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_should() {
    // hand-made cases for the parsing the checks rely on
    let (p, _) = expand("{a::B, c::{D, e::F}}");
    assert_eq!(
        p,
        vec![
            vec!["a".to_string(), "B".into()],
            vec!["c".into(), "D".into()],
            vec!["c".into(), "e".into(), "F".into()]
        ]
    );
    let s = strip("let x = \"crate::no\"; // crate::no\n/* crate::no */ crate::yes::It");
    assert!(!s.contains("no") && s.contains("crate::yes::It"));
    let t = without_tests("use crate::a;\n#[cfg(test)]\nmod tests { use crate::b; }\n#[cfg(test)]\nuse crate::c;\nfn f() {}");
    assert!(
        t.contains("crate::a")
            && !t.contains("crate::b")
            && !t.contains("crate::c")
            && t.contains("fn f")
    );
    let modules = load();
    let edges = graph(&modules);
    // known imports must be seen, or the checks above prove nothing
    let writer = vec!["store".to_string(), "writer".to_string()];
    let claim = vec!["store".to_string(), "claim".to_string()];
    assert!(
        edges[&writer].contains(&claim),
        "super:: imports are not seen"
    );
    let cli_to_config = edges
        .iter()
        .any(|(from, to)| from[0] == "cli" && to.iter().any(|t| t[0] == "config"));
    assert!(cli_to_config, "crate:: imports are not seen");
}
