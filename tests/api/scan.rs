//! `keygate scan`: secrets planted in a temporary git repository are found by file and line,
//! look-alikes and ignored files are not, the SARIF output is valid SARIF 2.1.0, and `--verify`
//! asks the server.

use std::path::Path;
use std::process::{Command, Output};

use keygate::secrets::{PlainSecret, SecretKind};

use crate::common::{Backend, TestApp, minted_secrets_in, on_both_backends, python_with};

on_both_backends!(verify_asks_the_server_whether_each_finding_works);

fn scan(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("KEYGATE_")) {
        command.env_remove(name);
    }
    let output = command
        .current_dir(dir)
        .arg("scan")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            minted_secrets_in(&text).is_empty(),
            "a secret was printed: {text}"
        );
    }
    output
}

/// A git repository holding a live-looking secret in `config/app.env` line 3, a look-alike
/// whose checksum is broken, and a real secret in a gitignored file.
fn planted_repository(dir: &Path, planted: &str) {
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}");
    };
    git(&["init", "--quiet"]);
    let mut broken = planted.to_owned();
    let last = broken.pop().unwrap();
    broken.push(if last == 'x' { 'y' } else { 'x' });
    std::fs::create_dir(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/app.env"),
        format!("# settings\nNAME=edge\nAGENT_DSN=grpc://edge:{planted}@gw:8010\n"),
    )
    .unwrap();
    std::fs::write(dir.join("lookalike.txt"), format!("token = {broken}\n")).unwrap();
    std::fs::write(dir.join(".gitignore"), "secrets.local\n").unwrap();
    let ignored = PlainSecret::mint(SecretKind::ApiKey);
    std::fs::write(dir.join("secrets.local"), ignored.expose()).unwrap();
}

#[test]
fn a_planted_secret_is_found_by_file_and_line_and_look_alikes_and_ignored_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let planted = PlainSecret::mint(SecretKind::AgentKey);
    planted_repository(dir.path(), planted.expose());

    let output = scan(dir.path(), &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let hint = planted.hint();
    assert_eq!(
        lines,
        [format!("./config/app.env:3:23: keygate agent_key {hint}")]
    );

    // Standard input, and a clean tree.
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["scan", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("x\n{}", planted.expose()).as_bytes())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(piped.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(piped.stdout).unwrap(),
        format!("-:2:1: keygate agent_key {hint}\n")
    );
    std::fs::remove_file(dir.path().join("config/app.env")).unwrap();
    let clean = scan(dir.path(), &[], &[]);
    assert_eq!(clean.status.code(), Some(0));
    assert!(clean.stdout.is_empty());
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0() {
    let dir = tempfile::tempdir().unwrap();
    let planted = PlainSecret::mint(SecretKind::AgentKey);
    planted_repository(dir.path(), planted.expose());
    let output = scan(dir.path(), &["--format", "sarif"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let log: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let result = &log["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "keygate/agent_key");
    let location = &result["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "config/app.env");
    assert_eq!(location["region"]["startLine"], 3);

    // The schema is OASIS's SARIF 2.1.0 (rtm.5), as Microsoft's SARIF tools ship it.
    let sarif = dir.path().join("out.sarif");
    std::fs::write(&sarif, &output.stdout).unwrap();
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sarif-schema-2.1.0.json");
    let python = python_with(&["jsonschema==4.23.0"]);
    let checked = Command::new(python)
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.validators.validator_for(schema)(schema).validate(json.load(open(sys.argv[2])))",
        ])
        .arg(schema)
        .arg(&sarif)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn patterns_are_printed_for_gitleaks_and_github() {
    let dir = tempfile::tempdir().unwrap();
    let gitleaks = scan(dir.path(), &["--patterns", "gitleaks"], &[]);
    assert_eq!(gitleaks.status.code(), Some(0));
    let text = String::from_utf8(gitleaks.stdout).unwrap();
    assert_eq!(text.matches("[[rules]]").count(), SecretKind::ALL.len());
    let github = scan(dir.path(), &["--patterns", "github"], &[]);
    let text = String::from_utf8(github.stdout).unwrap();
    for (line, kind) in text.lines().zip(SecretKind::ALL) {
        let (name, regex) = line.split_once('\t').unwrap();
        assert_eq!(name, format!("keygate_{}", kind.as_str()));
        let regex = regex::Regex::new(&format!("^{regex}$")).unwrap();
        assert!(regex.is_match(PlainSecret::mint(kind).expose()));
    }
}

async fn verify_asks_the_server_whether_each_finding_works(backend: Backend) {
    let app = TestApp::start(backend).await;
    let dsn = app.create_agent("edge-1").await;
    let key = keygate::secrets::agent_key::parse_dsn(&dsn).unwrap().key;
    let dir = tempfile::tempdir().unwrap();
    planted_repository(dir.path(), &key);
    let token = crate::common::BOOTSTRAP_TOKEN;
    let output = scan(
        dir.path(),
        &["--verify"],
        &[("KEYGATE_URL", &app.base), ("KEYGATE_TOKEN", token)],
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.ends_with("(valid)\n"), "{stdout}");
}
