//! What README.md and docs/*.md name exists: every route (`POST /agents/{nameOrId}/rotate`, a
//! curl to `localhost:8009/…`) is served, every `KEYGATE_…` variable is read, and every
//! `keygate <verb>` is a command of the binary.
//!
//! Where names are looked for: routes and verbs in code (code spans and code blocks), variables
//! anywhere. Routes come from the served OpenAPI document, with the `/api` and
//! `/api/public/v1.0` prefixes the hoop and Ops Manager routes are also served under, and the
//! router's pages outside it ([`PAGES`], each checked to answer). Variables come from the
//! binary's command line (every setting's `env`), the `--output env` prefixes of the client,
//! and what the tests and CI scripts read. Verbs come from the binary's clap command. And
//! docs/ARCHITECTURE.md names every module of `src/storage/`, and no other.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use reqwest::{Method, StatusCode};

use super::documents;
use crate::common::{Backend, TestApp, operations};

/// Served by the router but not API operations, so not in the OpenAPI document.
const PAGES: &[&str] = &["/docs", "/openapi.json", "/console/"];

/// Paths the documents name that keygate does not serve, and why they are named.
const NOT_SERVED: &[(&str, &str)] = &[(
    "/agents/forward/name/{agent_name}/{forward_path}",
    "Agentex's forwarding path, which webhook triggers put in the webhook_url they return",
)];

/// Prefixes under which the routes are served too.
const MOUNTS: &[&str] = &["/api/public/v1.0", "/api"];

/// A name some document uses, and where.
struct Named {
    place: String,
    name: String,
}

/// The code of every document: each code block's lines and each code span, with its place.
fn code() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for document in documents() {
        for fence in document.fences() {
            for (offset, line) in fence.body.iter().enumerate() {
                let place = format!("{}:{}", document.path, fence.line + 1 + offset);
                found.push((place, line.clone()));
            }
        }
        let prose = document.prose();
        let mut rest = prose.as_str();
        let mut consumed = 0;
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            let line = prose[..consumed + start].lines().count().max(1);
            found.push((format!("{}:{line}", document.path), after[..end].to_owned()));
            consumed += start + end + 2;
            rest = &after[end + 1..];
        }
    }
    found
}

#[test]
fn named_environment_variables_are_read() {
    let mut known: BTreeSet<String> = BTreeSet::new();
    collect_envs(&keygate::cli::Cli::command(), &mut known);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // What the test suite and the CI and tooling scripts read.
    for file in files(&root.join("tests"), "rs")
        .into_iter()
        .chain(files(&root.join("bench"), "sh"))
        .chain(files(&root.join("fuzz"), "sh"))
        .chain([root.join(".ci/run")])
    {
        let text = std::fs::read_to_string(&file).unwrap();
        known.extend(variables_in(&text).into_iter().map(|named| named.1));
    }
    // `--output env` names are a command's prefix and a field: KEYGATE_AGENT_DSN.
    let prefixes: Vec<String> = files(&root.join("src/cli"), "rs")
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.split("env_prefix: \"")
                .skip(1)
                .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        prefixes.contains(&"KEYGATE_AGENT".to_owned()),
        "{prefixes:?}"
    );

    let mut unknown = Vec::new();
    for document in documents() {
        for (line, name) in variables_in(&document.text) {
            let output_name = prefixes
                .iter()
                .any(|prefix| name == *prefix || name.starts_with(&format!("{prefix}_")));
            if !known.contains(&name) && !output_name {
                unknown.push(Named {
                    place: format!("{}:{line}", document.path),
                    name,
                });
            }
        }
    }
    assert_none("environment variable(s) nothing reads", &unknown);
}

fn collect_envs(command: &clap::Command, known: &mut BTreeSet<String>) {
    for argument in command.get_arguments() {
        if let Some(env) = argument.get_env() {
            known.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in command.get_subcommands() {
        collect_envs(sub, known);
    }
}

/// Every `KEYGATE_…` name in `text`, with its line; a name cut short by a placeholder
/// (`KEYGATE_MACHINE_IDENTITY_<CONNECTION>_…`) is kept up to it.
fn variables_in(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices("KEYGATE_") {
            let name: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            found.push((index + 1, name.trim_end_matches('_').to_owned()));
        }
    }
    found
}

fn files(dir: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path, extension));
        } else if path.extension().is_some_and(|ext| ext == extension) {
            found.push(path);
        }
    }
    found
}

#[test]
fn named_commands_exist() {
    let cli = keygate::cli::Cli::command();
    let mut unknown = Vec::new();
    for (place, code) in code() {
        for words in invocations(&code) {
            let mut words = words.into_iter().take_while(|word| is_verb(word));
            let Some(first) = words.next() else { continue };
            let Some(command) = cli.find_subcommand(&first) else {
                unknown.push(Named {
                    place,
                    name: format!("keygate {first}"),
                });
                break;
            };
            let second = words.next().filter(|_| command.has_subcommands());
            if let Some(second) = second.filter(|verb| command.find_subcommand(verb).is_none()) {
                unknown.push(Named {
                    place,
                    name: format!("keygate {first} {second}"),
                });
                break;
            }
        }
    }
    assert_none("command(s) the binary does not have", &unknown);
}

/// The words after each `keygate` that starts a command in `code`: at its start, after the
/// variables it sets, or after `|`, `;`, `&&`, `||` or `$(`.
fn invocations(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut starts_command = true;
    let words: Vec<&str> = code.split_whitespace().collect();
    for (index, word) in words.iter().enumerate() {
        let word = word.strip_prefix("$(").unwrap_or(word);
        if starts_command && word == "keygate" {
            found.push(words[index + 1..].iter().map(|w| w.to_string()).collect());
        }
        starts_command = match word {
            "|" | ";" | "&&" | "||" | "$(" => true,
            _ if word.contains('=') && !word.starts_with('-') => starts_command,
            _ => false,
        };
    }
    found
}

/// A subcommand's name as clap spells them, not a flag, an argument or a `<placeholder>`.
fn is_verb(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_lowercase())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_routes_are_served() {
    let app = TestApp::start(Backend::Sqlite).await;
    let mut routes: Vec<String> = operations(&app)
        .await
        .into_iter()
        .map(|(_, path, _)| path)
        .collect();
    for page in PAGES {
        let answer = app.request(Method::GET, page, None).send().await.unwrap();
        assert_ne!(answer.status(), StatusCode::NOT_FOUND, "{page} is served");
        routes.push(page.to_string());
    }
    let routes: Vec<Vec<String>> = routes.iter().map(|route| segments(route)).collect();
    let heads: BTreeSet<&str> = routes.iter().map(|route| route[0].as_str()).collect();

    let mut unknown = Vec::new();
    for (place, code) in code() {
        for path in paths(&code) {
            if MOUNTS.contains(&path.as_str()) || NOT_SERVED.iter().any(|(named, _)| *named == path)
            {
                continue;
            }
            let bare = MOUNTS
                .iter()
                .find_map(|mount| path.strip_prefix(mount))
                .filter(|rest| rest.starts_with('/'))
                .unwrap_or(&path);
            let asked = segments(bare);
            // Only paths that start like a route: not files (`/data/bootstrap-token`) nor
            // the mounts themselves.
            if !heads.contains(asked[0].as_str()) {
                continue;
            }
            let served = [segments(&path), asked]
                .iter()
                .any(|asked| routes.iter().any(|route| route_matches(route, asked)));
            if !served {
                unknown.push(Named { place, name: path });
                break;
            }
        }
    }
    assert_none("route(s) keygate does not serve", &unknown);
}

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

/// Whether `route` (a template: `{…}` segments take anything) is the path `asked`, where a
/// segment ending in `…` stands for any rest (`/groups…`).
fn route_matches(route: &[String], asked: &[String]) -> bool {
    for (at, segment) in asked.iter().enumerate() {
        if let Some(stem) = segment.strip_suffix('…') {
            return route
                .get(at)
                .is_some_and(|part| part.starts_with(stem) || part.starts_with('{'));
        }
        match route.get(at) {
            Some(part) if part.starts_with('{') || part == segment => {}
            _ => return false,
        }
    }
    route.len() == asked.len()
}

/// The paths `code` sends requests to or names: after `localhost:8009`, `127.0.0.1:8009` or
/// `$API`, or standing alone (`POST /agents`), up to a query, a space or a quote.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices('/') {
        let before = &code[..at];
        let base = if before.ends_with("$API") {
            "/api/public/v1.0"
        } else if before.ends_with("localhost:8009")
            || before.ends_with("127.0.0.1:8009")
            || before.is_empty()
            || before.ends_with([' ', '(', '"', '\'', '<', '`'])
        {
            ""
        } else {
            continue;
        };
        let path: String = code[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !"?#[\"'`)>,;|\\".contains(*c))
            .collect();
        found.push(format!("{base}{path}"));
    }
    found
}

#[test]
fn architecture_names_the_storage_modules_as_they_are() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules: BTreeSet<String> = std::fs::read_dir(root.join("src/storage"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .map(|file| format!("storage/{file}"))
        .collect();
    let architecture = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let named: BTreeSet<String> = architecture
        .match_indices("`storage/")
        .map(|(at, _)| {
            let rest = &architecture[at + 1..];
            rest[..rest.find('`').unwrap()].to_owned()
        })
        // `storage/`, `storage/<family>.rs`: the folder, or a module to come.
        .filter(|name| name.ends_with(".rs") && !name.contains('<'))
        .collect();
    let missing: Vec<_> = modules.difference(&named).collect();
    let gone: Vec<_> = named.difference(&modules).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "docs/ARCHITECTURE.md does not name {missing:?}, and names {gone:?}, which do not exist"
    );
}

fn assert_none(what: &str, unknown: &[Named]) {
    let list: Vec<String> = unknown
        .iter()
        .map(|named| format!("  {}: {}", named.place, named.name))
        .collect();
    assert!(
        unknown.is_empty(),
        "the documents name {what}:\n{}",
        list.join("\n")
    );
}
