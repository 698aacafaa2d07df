//! Dependencies point down, checked on the source itself: the HTTP adapters reach the database
//! only through the engine, and the engine (and the store) never depend on the command line or
//! on HTTP. Each finding names the file and line.

use std::path::{Path, PathBuf};

/// Plain data and classification types of the store that adapters may still name. None of them
/// reads or writes anything.
const STORE_NAMES_ALLOWED_IN_HTTP: &[&str] = &[
    // Records the pages render (a signed-in user, the client a sign-in page names).
    "User",
    "Client",
    // A classification trait ("may succeed if sent again"), implemented by every engine error;
    // the error pages use it to choose 503 over 500.
    "Transient",
    // What an operator narrows the audit log to (strings and times), typed on the audit page.
    "AuditFilter",
];

/// This file, as [`sources`] names it.
const THIS_FILE: &str = "src/http/layering.rs";

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `.rs` files under `src/<dirs>`, with their text.
fn sources(dirs: &[&str]) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for dir in dirs {
        source_files(&root.join(dir), &mut files);
    }
    assert!(!files.is_empty(), "no source files found under {dirs:?}");
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let name = path
                .strip_prefix(&root)
                .map(|p| format!("src/{}", p.display()))
                .unwrap_or_else(|_| path.display().to_string());
            (name, text)
        })
        .collect()
}

/// Lines of code, numbered from 1; comment lines (`//`, `///`, `//!`) are left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where `word` occurs in `line` as a whole word (not inside a longer identifier).
fn word_at(line: &str, word: &str) -> Vec<usize> {
    line.match_indices(word)
        .map(|(i, _)| i)
        .filter(|&i| {
            let before = line[..i].chars().next_back();
            let after = line[i + word.len()..].chars().next();
            !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
        })
        .collect()
}

/// The names a `crate::store…` path brings in: `crate::store::{A, b::C}` gives `A` and `b`;
/// `crate::store` alone (the module itself) gives `store`.
fn store_names(rest: &str) -> Vec<String> {
    let Some(rest) = rest.strip_prefix("::") else {
        return vec!["store".into()];
    };
    let first = |s: &str| {
        s.trim()
            .split(|c: char| !is_ident(c))
            .next()
            .unwrap_or("")
            .to_string()
    };
    match rest.strip_prefix('{') {
        Some(group) => group
            .split('}')
            .next()
            .unwrap_or("")
            .split(',')
            .map(first)
            .filter(|n| !n.is_empty())
            .collect(),
        None => vec![first(rest)],
    }
}

/// Store calls and store names in one adapter file: `.store` (a call, or the store handed on)
/// and `crate::store` paths other than the allowed data types.
fn store_uses_in_adapter(file: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    // A `use crate::store::{…}` list may span lines: read the file as one line per statement
    // for imports, and line by line for calls.
    let code: Vec<(usize, &str)> = code_lines(text).collect();
    for (n, line) in &code {
        if word_at(line, "store")
            .iter()
            .any(|&i| line[..i].ends_with('.'))
        {
            found.push(format!("{file}:{n}: store call `{}`", line.trim()));
        }
    }
    for (i, (n, line)) in code.iter().enumerate() {
        for (at, _) in line.match_indices("crate::store") {
            let mut rest: String = line[at + "crate::store".len()..].to_string();
            // Join the following lines while a `{` group is open.
            let mut j = i + 1;
            while rest.contains('{') && !rest.contains('}') && j < code.len() {
                rest.push_str(code[j].1.trim());
                j += 1;
            }
            for name in store_names(&rest) {
                if !STORE_NAMES_ALLOWED_IN_HTTP.contains(&name.as_str()) {
                    found.push(format!(
                        "{file}:{n}: names `crate::store::{name}`, which is not plain data"
                    ));
                }
            }
        }
    }
    found
}

/// Paths into the edges (`crate::cli`, `crate::http`) in one engine or store file.
fn edge_uses_in_domain(file: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in code_lines(text) {
        for edge in ["crate::cli", "crate::http"] {
            if !word_at(line, edge).is_empty() {
                found.push(format!(
                    "{file}:{n}: depends on `{edge}`: `{}`",
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn handlers_reach_the_database_only_through_the_engine() {
    let found: Vec<String> = sources(&["http"])
        .iter()
        // This file spells out the very patterns it looks for.
        .filter(|(file, _)| file != THIS_FILE)
        .flat_map(|(file, text)| store_uses_in_adapter(file, text))
        .collect();
    assert!(
        found.is_empty(),
        "HTTP adapters must call the engine, not the store:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_engine_and_the_store_never_depend_on_the_command_line_or_http() {
    let found: Vec<String> = sources(&["admin", "auth", "oauth", "keys", "store"])
        .iter()
        .flat_map(|(file, text)| edge_uses_in_domain(file, text))
        .collect();
    assert!(
        found.is_empty(),
        "the engine must not depend on its edges:\n{}",
        found.join("\n")
    );
}

// The checks themselves, on the shapes of code they exist to catch (so they cannot pass by
// never finding anything).

#[test]
fn a_store_call_is_found_even_when_the_chain_is_split_across_lines() {
    let text = "fn f() {\n    let c = p\n        .store\n        .session_clients(&s.id);\n}\n";
    let found = store_uses_in_adapter("x.rs", text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("x.rs:3:"), "{found:?}");
    let text = "    if let Err(e) = state.provider.store.ping().await {\n";
    assert_eq!(store_uses_in_adapter("x.rs", text).len(), 1);
    let text = "    rotation::rotate(&provider.store, &policy);\n";
    assert_eq!(store_uses_in_adapter("x.rs", text).len(), 1);
}

#[test]
fn a_store_trait_import_is_found_and_plain_data_is_allowed() {
    let found = store_uses_in_adapter("x.rs", "use crate::store::{SessionStore, User};\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("SessionStore"), "{found:?}");
    let found = store_uses_in_adapter(
        "x.rs",
        "use crate::store::{\n    Client,\n    ConsentStore,\n};\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("ConsentStore"), "{found:?}");
    assert_eq!(
        store_uses_in_adapter("x.rs", "use crate::store;\n").len(),
        1
    );
    assert!(store_uses_in_adapter("x.rs", "use crate::store::{Client, User};\n").is_empty());
    assert!(store_uses_in_adapter("x.rs", "use crate::store::Transient;\n").is_empty());
    // Words that merely contain "store", and comments, are not store access.
    let text = "// p.store.find_client(id)\nfn no_store_json() {}\nlet restore = x.restore();\n";
    assert!(store_uses_in_adapter("x.rs", text).is_empty());
}

#[test]
fn an_engine_file_naming_the_command_line_or_http_is_found() {
    let text = "//! Adapters in `crate::http` call this.\nfn f() {\n    let e = crate::cli::normalise_email(e);\n}\n";
    let found = edge_uses_in_domain("src/auth/recovery.rs", text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/auth/recovery.rs:3:"), "{found:?}");
    assert_eq!(
        edge_uses_in_domain("x.rs", "use crate::http::AppState;\n").len(),
        1
    );
    assert!(edge_uses_in_domain("x.rs", "use crate::client_auth;\n").is_empty());
}
