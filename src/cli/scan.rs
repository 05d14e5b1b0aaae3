//! `keygate scan`: finds keygate secrets in files before they are pushed, for pre-commit hooks
//! and CI. Offline: a string counts only when keygate could have minted it (prefix, shape and
//! checksum), so look-alikes are not reported; the walk honours `.gitignore`. A finding shows
//! the secret's prefix and last four characters, never the secret.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use super::ClientArgs;
use super::client::{Call, Client};
use crate::secrets::SecretKind;
use crate::secrets::scanning::{find_secrets, pattern};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and directories to scan (`-` reads standard input). Default: the current directory.
    pub paths: Vec<PathBuf>,

    /// Output: text (a line per finding) or sarif (SARIF 2.1.0, for GitHub code scanning).
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    pub format: ScanFormat,

    /// Also ask the keygate server (--url, KEYGATE_TOKEN) whether each finding works.
    #[arg(long)]
    pub verify: bool,

    /// Print the regular expressions of keygate's secrets, for gitleaks' configuration or
    /// GitHub's custom patterns, and scan nothing.
    #[arg(long, value_enum)]
    pub patterns: Option<PatternsFor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    Text,
    Sarif,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PatternsFor {
    Gitleaks,
    Github,
}

/// A secret found: where, what kind, its hint, and what the server said of it (`--verify`).
struct Finding {
    path: String,
    line: usize,
    column: usize,
    kind: SecretKind,
    hint: String,
    verdict: Option<String>,
}

/// Scans as `args` say: exit 0 when nothing is found, 1 when something is, 2 when a path
/// cannot be read or the server cannot be asked.
pub async fn scan(args: ScanArgs, client: ClientArgs) -> ExitCode {
    if let Some(tool) = args.patterns {
        print!("{}", patterns(tool));
        return ExitCode::SUCCESS;
    }
    let client = match args.verify.then(|| Client::new(&client)).transpose() {
        Ok(client) => client,
        Err((exit, message)) => {
            eprintln!("keygate: {message}");
            return ExitCode::from(exit as u8);
        }
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let mut findings = Vec::new();
    let mut failed = false;
    for (path, text) in texts(&paths, &mut failed) {
        for found in find_secrets(&text) {
            let before = &text[..found.at];
            let line = before.matches('\n').count() + 1;
            let column = found.at - before.rfind('\n').map_or(0, |at| at + 1) + 1;
            let verdict = match &client {
                Some(client) => {
                    let secret = &text[found.at..found.at + found.kind.minted_len()];
                    match verdict(client, secret).await {
                        Ok(code) => Some(code),
                        Err(message) => {
                            eprintln!("keygate: {path}:{line}: cannot verify: {message}");
                            failed = true;
                            None
                        }
                    }
                }
                None => None,
            };
            findings.push(Finding {
                path: path.clone(),
                line,
                column,
                kind: found.kind,
                hint: found.hint,
                verdict,
            });
        }
    }
    match args.format {
        ScanFormat::Text => {
            for f in &findings {
                let verdict = f
                    .verdict
                    .as_ref()
                    .map_or(String::new(), |code| format!(" ({code})"));
                println!(
                    "{}:{}:{}: keygate {} {}{verdict}",
                    f.path,
                    f.line,
                    f.column,
                    f.kind.as_str(),
                    f.hint
                );
            }
        }
        ScanFormat::Sarif => println!("{:#}", sarif(&findings)),
    }
    if failed {
        ExitCode::from(2)
    } else if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Every file to scan with its text: `-` is standard input; directories are walked with
/// `.gitignore` (and `.ignore`) honoured, hidden files (`.env`) included but `.git` left out.
/// A path that cannot be read is said on stderr and sets `failed`.
fn texts(paths: &[PathBuf], failed: &mut bool) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            let mut bytes = Vec::new();
            match std::io::stdin().read_to_end(&mut bytes) {
                Ok(_) => texts.push(("-".to_owned(), lossy(bytes))),
                Err(err) => {
                    eprintln!("keygate: cannot read standard input: {err}");
                    *failed = true;
                }
            }
            continue;
        }
        let walk = ignore::WalkBuilder::new(path)
            .hidden(false)
            .filter_entry(|entry| entry.file_name() != ".git")
            .build();
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    eprintln!("keygate: {err}");
                    *failed = true;
                    continue;
                }
            };
            if !entry.file_type().is_some_and(|kind| kind.is_file()) {
                continue;
            }
            let shown = entry.path().display().to_string();
            match std::fs::read(entry.path()) {
                Ok(bytes) => texts.push((shown, lossy(bytes))),
                Err(err) => {
                    eprintln!("keygate: cannot read {shown}: {err}");
                    *failed = true;
                }
            }
        }
    }
    texts
}

/// Secrets are ASCII: whatever else a file holds (binary, another encoding) cannot hide one.
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into())
}

/// What `POST /verify` answers for `secret`: its `code` (`valid`, `revoked`, `not_found`, …).
/// API keys are never answered for there: keygate's own credentials read `not_found`.
async fn verdict(client: &Client, secret: &str) -> Result<String, String> {
    let call = Call::new(Method::POST, ["verify"]).body(json!({ "key": secret }));
    let reply = client.send(&call).await.map_err(|err| err.to_string())?;
    reply.body["code"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the answer has no code".to_owned())
}

/// The regular expressions, in gitleaks' TOML or as GitHub custom patterns' fields.
fn patterns(tool: PatternsFor) -> String {
    let mut out = String::new();
    if tool == PatternsFor::Gitleaks {
        out.push_str(
            "# keygate secrets, for gitleaks' configuration ([extend] useDefault = true)\n",
        );
    }
    for kind in SecretKind::ALL {
        let name = kind.as_str();
        let regex = pattern(kind);
        let prefix = kind.prefix();
        out.push_str(&match tool {
            PatternsFor::Gitleaks => format!(
                "\n[[rules]]\nid = \"keygate-{}\"\ndescription = \"keygate {name}\"\n\
                 regex = '''{regex}'''\nkeywords = [\"{prefix}\"]\n",
                name.replace('_', "-")
            ),
            PatternsFor::Github => format!("keygate_{name}\t{regex}\n"),
        });
    }
    out
}

/// The findings as a SARIF 2.1.0 log, one rule per kind of secret.
fn sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = SecretKind::ALL
        .into_iter()
        .map(|kind| {
            json!({
                "id": rule_id(kind),
                "name": format!("keygate {}", kind.as_str()),
                "shortDescription": {"text": format!("A keygate {} is committed", kind.as_str())},
                "fullDescription": {"text": format!(
                    "A keygate secret of kind {} (prefix {}) with a valid checksum is in the file. \
                     Rotate or revoke it, and remove it from the history.",
                    kind.as_str(), kind.prefix()
                )},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": ["security", "secret"], "security-severity": "9.0"},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let rule_index = SecretKind::ALL.iter().position(|k| *k == f.kind);
            let mut message = format!("keygate {} {}", f.kind.as_str(), f.hint);
            if let Some(code) = &f.verdict {
                message.push_str(&format!(" (the server says: {code})"));
            }
            json!({
                "ruleId": rule_id(f.kind),
                "ruleIndex": rule_index,
                "level": "error",
                "message": {"text": message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": uri(&f.path)},
                    "region": {
                        "startLine": f.line,
                        "startColumn": f.column,
                        "endColumn": f.column + f.kind.minted_len(),
                    },
                }}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keygate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// What a URI path segment may hold unencoded (RFC 3986's unreserved characters).
const URI_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn rule_id(kind: SecretKind) -> String {
    format!("keygate/{}", kind.as_str())
}

/// A path as a relative URI reference: `/` separators, no leading `./`, each segment
/// percent-encoded.
fn uri(path: &str) -> String {
    path.trim_start_matches("./")
        .split(['/', '\\'])
        .map(|segment| percent_encoding::utf8_percent_encode(segment, URI_SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}
