//! Every shell block of README.md and docs/*.md, run as written by bash, in order, against a
//! fresh keygate started the way the README starts it.
//!
//! Conventions the documents follow, and this test holds them to:
//!
//! - **What runs.** Every ```` ```sh ```` block. A block that cannot run here (Docker, a GitHub
//!   Actions step, the test suite itself, a benchmark) has `<!-- no-run: why -->` on the line
//!   before its fence; the test prints its place and why it was skipped. A `bash`, `shell`,
//!   `console`, `yaml` or `dockerfile` block without that mark is refused: shell meant to be
//!   pasted is `sh`, and what cannot run says why.
//! - **Sections.** The blocks of one `## ` section run together in one bash (`set -euo
//!   pipefail`, `inherit_errexit`), in a directory of their own. The first section with a block
//!   to run (the walk-through) starts the server as the README does; every later section starts
//!   from that server and the shell variables the walk-through assigned (`TOKEN`, `MEMBER`, …),
//!   and nothing else: it creates what else it uses. A failing section does not stop the others.
//! - **Expected output.** A comment line directly below a command whose text starts with `{`,
//!   `[`, `<`, `"`, a digit or `HTTP/` (`# {"valid":true,…}`) is what that command prints on
//!   stdout; the comment lines directly below it that start with `#` and two or more spaces
//!   continue it. Line breaks and the spaces around lines are not compared (a JSON answer
//!   printed on one line is wrapped for reading), and `…` stands for any text. Every other
//!   comment is prose.
//! - **Placeholders.** `…` in a command, outside expected output, is something the reader would
//!   have to replace: refused.
//! - **The machine.** PATH holds only links to what a fresh Debian has, curl and openssl (which
//!   the README asks for), `keygate` (the README's `cargo install --path .`) and `cargo`, where
//!   `cargo run --release [-- ARGS]` runs the binary this suite already built
//!   (`CARGO_BIN_EXE_keygate`) with the same environment and arguments: compiling a release
//!   build inside a test would take minutes. Any other cargo command fails. No jq, no uuidgen.
//!   HOME and TMPDIR are inside the test's temporary directory. When the test runs as root,
//!   the blocks run as `nobody`, unprivileged as a reader's shell is: a block that writes
//!   outside its directory (`> /etc/…`) fails instead of changing this machine.
//! - **Isolation.** The blocks name `localhost:8009` as the README does. They run in a network
//!   namespace of their own (`unshare --net`), so that a keygate already serving there, or
//!   another run of this test, is neither reached nor in the way; where namespaces are
//!   unavailable they run on the host's loopback, and the test refuses to start when 8009 is
//!   taken.
//!
//! Whatever the test prints has every secret keygate minted masked.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Document, Fence, NO_RUN, documents};
use crate::common::minted_secrets_in;

/// What a fresh Debian puts on PATH that the blocks may use, plus curl and openssl.
const TOOLS: &str = "bash sh cat cp mv rm mkdir mktemp ls ln touch chmod echo printf env sleep \
    timeout seq head tail tr cut sort uniq wc tee date base64 basename dirname true false test [ \
    id od sha256sum stat readlink realpath paste xargs find sed grep awk diff gzip tar hostname \
    curl openssl";

/// Languages of blocks that look like something to run: each must be `sh` or marked no-run.
const RUNNABLE_LOOKING: &str = "sh bash shell console yaml yml dockerfile";

/// The longest a section may run before it counts as hung (a readiness loop that never ends).
const SECTION_TIMEOUT_SECS: u64 = 30;

/// The port the README's server listens on, as its blocks name it.
const README_PORT: u16 = 8009;

/// `cargo` as the blocks find it: `cargo run --release` is the already-built binary.
const CARGO_SHIM: &str = r#"#!/bin/bash
# README test: `cargo run --release [-- ARGS]` runs the binary the test suite built, with the
# caller's environment and ARGS, instead of compiling a release build.
if [ "${1-}" = run ] && [ "${2-}" = --release ]; then
    shift 2
    if [ "${1-}" = -- ]; then shift; fi
    exec KEYGATE_BINARY "$@"
fi
echo "cargo $*: only 'cargo run --release' runs in the README test" >&2
exit 127
"#;

#[test]
fn shell_blocks_run_as_written() {
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    for document in documents() {
        for fence in document.fences() {
            let place = format!("{}:{}", document.path, fence.line);
            if let Some(why) = &fence.no_run {
                skipped.push(format!("{place} ({}): {why}", fence.section));
            } else if fence.lang == "sh" {
                let block = Block::new(&document, fence);
                problems.extend(block.placeholders());
                match sections.last_mut() {
                    Some(section)
                        if section.path == document.path && section.name == block.section =>
                    {
                        section.blocks.push(block)
                    }
                    _ => sections.push(Section {
                        path: document.path.clone(),
                        name: block.section.clone(),
                        blocks: vec![block],
                    }),
                }
            } else if RUNNABLE_LOOKING
                .split_whitespace()
                .any(|lang| lang == fence.lang)
            {
                problems.push(format!(
                    "{place}: a {} block is neither run (```sh) nor marked `{NO_RUN} why -->`",
                    fence.lang
                ));
            }
        }
    }
    assert!(!sections.is_empty(), "the README has shell blocks to run");

    let run = Run::new();
    let (outcomes, isolation) = run.execute(&sections);
    let mut checked = 0;
    for (section, outcome) in sections.iter().zip(&outcomes) {
        let (failures, compared) = outcome.judge(section);
        problems.extend(failures);
        checked += compared;
    }

    let mut report = format!(
        "README test: {} sections run ({isolation}), {checked} printed outputs compared, in {} s",
        sections.len(),
        started.elapsed().as_secs()
    );
    for skip in &skipped {
        let _ = write!(report, "\n  skipped {skip}");
    }
    // Straight to the terminal, past the test harness's capture: a skipped block is named on
    // every run, not only when something fails.
    let _ = writeln!(std::io::stderr(), "{report}");
    assert!(
        problems.is_empty(),
        "{} problem(s) with the documents' shell blocks:\n\n{}",
        problems.len(),
        mask(&problems.join("\n\n"))
    );
}

/// A shell block to run, split into commands as bash reads them.
struct Block {
    path: String,
    section: String,
    /// Line of the block's first body line in its document, from 1.
    first_line: usize,
    lines: Vec<String>,
    commands: Vec<ShellCommand>,
}

/// One command of a block: its lines, the part of each before any comment, and what it is
/// expected to print.
struct ShellCommand {
    first: usize,
    last: usize,
    code: Vec<String>,
    expected: Option<Expected>,
}

struct Expected {
    /// Index, in the block, of the comment's first line.
    line: usize,
    text: String,
}

impl Block {
    fn new(document: &Document, fence: Fence) -> Block {
        let commands = commands(&fence.body);
        Block {
            path: document.path.clone(),
            section: fence.section,
            first_line: fence.line + 1,
            lines: fence.body,
            commands,
        }
    }

    fn place(&self, index: usize) -> String {
        format!("{}:{}", self.path, self.first_line + index)
    }

    fn placeholders(&self) -> Vec<String> {
        let mut found = Vec::new();
        for command in &self.commands {
            for (offset, code) in command.code.iter().enumerate() {
                if code.contains('…') {
                    found.push(format!(
                        "{}: a placeholder (…) the reader would have to replace: {}",
                        self.place(command.first + offset),
                        self.lines[command.first + offset].trim()
                    ));
                }
            }
        }
        found
    }

    /// Shell variables the block assigns as whole commands (`NAME=…`, `export NAME=…`).
    fn assigned(&self) -> Vec<String> {
        let mut names = Vec::new();
        for command in &self.commands {
            let code = command.code[0].trim_start();
            let code = code.strip_prefix("export ").unwrap_or(code).trim_start();
            let name: String = code
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && code[name.len()..].starts_with('=') && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// Splits shell text into its commands: a command goes on over lines while a quote or a
/// parenthesis is open or a line ends with a backslash. Comments and blank lines between
/// commands belong to none; the comment lines directly below a command may be its expected
/// output.
fn commands(lines: &[String]) -> Vec<ShellCommand> {
    let mut found = Vec::new();
    // Open quotes and parentheses, innermost last: '\'', '"' or ')'.
    let mut open: Vec<char> = Vec::new();
    let mut continued = false;
    let mut current: Option<ShellCommand> = None;
    for (index, line) in lines.iter().enumerate() {
        let inside = !open.is_empty() || continued;
        let chars: Vec<char> = line.chars().collect();
        let mut code = String::new();
        continued = false;
        let mut at = 0;
        while at < chars.len() {
            let c = chars[at];
            if c == '\\' && open.last() != Some(&'\'') {
                // An escaped character; at the end of a line, the command goes on.
                code.push(c);
                match chars.get(at + 1) {
                    Some(&next) => code.push(next),
                    None => continued = true,
                }
                at += 2;
                continue;
            }
            match open.last() {
                Some('\'') => {
                    if c == '\'' {
                        open.pop();
                    }
                }
                Some('"') => match c {
                    '"' => {
                        open.pop();
                    }
                    '$' if chars.get(at + 1) == Some(&'(') => {
                        open.push(')');
                        code.push(c);
                        at += 1;
                    }
                    _ => {}
                },
                _ => match c {
                    '\'' | '"' => open.push(c),
                    '(' => open.push(')'),
                    ')' if open.last() == Some(&')') => {
                        open.pop();
                    }
                    '#' if at == 0
                        || chars[at - 1].is_whitespace()
                        || ";|&(".contains(chars[at - 1]) =>
                    {
                        break;
                    }
                    _ => {}
                },
            }
            code.push(c);
            at += 1;
        }
        if !inside && code.trim().is_empty() {
            continue;
        }
        let command = current.get_or_insert_with(|| ShellCommand {
            first: index,
            last: index,
            code: Vec::new(),
            expected: None,
        });
        command.last = index;
        command.code.push(code);
        if open.is_empty() && !continued {
            let mut command = current.take().unwrap();
            command.expected = expected_output(lines, index + 1);
            found.push(command);
        }
    }
    found.extend(current);
    found
}

/// The expected output written from line `at` on, if a comment there is one.
fn expected_output(lines: &[String], at: usize) -> Option<Expected> {
    let first = lines.get(at)?.trim_start().strip_prefix("# ")?;
    let starts_output = first.starts_with(['{', '[', '<', '"'])
        || first.starts_with(|c: char| c.is_ascii_digit())
        || first.starts_with("HTTP/");
    if !starts_output {
        return None;
    }
    let mut text = first.trim().to_owned();
    for line in &lines[at + 1..] {
        match line.trim_start().strip_prefix('#') {
            Some(rest) if rest.starts_with("  ") => text.push_str(rest.trim()),
            _ => break,
        }
    }
    Some(Expected { line: at, text })
}

/// Whether `actual` is `pattern`, where `…` in the pattern stands for any text.
fn matches(pattern: &str, actual: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('…').collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if pieces.len() == 1 {
        return actual == pattern;
    }
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    if !rest.ends_with(last) {
        return false;
    }
    rest = &rest[..rest.len() - last.len()];
    // Between the two ends, each piece at its first place after the one before: as early as
    // possible leaves the most room for the pieces after it.
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Output as compared: each line trimmed, the lines joined.
fn flatten(output: &str) -> String {
    output.lines().map(str::trim).collect()
}

/// Every secret keygate minted, replaced by a mark saying so.
fn mask(text: &str) -> String {
    let mut masked = text.to_owned();
    for secret in minted_secrets_in(text) {
        masked = masked.replace(&secret, "<a minted secret>");
    }
    masked
}

/// A `## ` section's blocks, run by one bash.
struct Section {
    path: String,
    name: String,
    blocks: Vec<Block>,
}

/// The temporary directory of one run, and the host tools it links to.
struct Run {
    dir: tempfile::TempDir,
    /// `setpriv`, when the test runs as root: the blocks run as `nobody`, as a reader would run
    /// them, so that a block writing outside its directory (`> /etc/…`) fails instead of
    /// changing this machine.
    setpriv: Option<PathBuf>,
}

/// The user the blocks run as when the test runs as root.
const NOBODY: u32 = 65534;

/// The bash script of one section, and where each of its lines came from.
struct Script {
    text: String,
    /// Per script line (from 1): the block and the line within it.
    origin: Vec<Option<(usize, usize)>>,
}

/// What running a section came to.
struct Outcome {
    index: usize,
    dir: PathBuf,
    /// Where the commands' printed outputs are kept.
    out: PathBuf,
    origin: Vec<Option<(usize, usize)>>,
}

impl Run {
    fn new() -> Run {
        let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let run = Run {
            dir: tempfile::tempdir().unwrap(),
            setpriv: host_tool("setpriv").filter(|_| as_root),
        };
        std::fs::set_permissions(run.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(run.path("bin")).unwrap();
        // Everything the blocks write is under work/, theirs.
        for sub in ["work", "work/home", "work/tmp", "work/out", "work/sections"] {
            std::fs::create_dir(run.path(sub)).unwrap();
            if run.setpriv.is_some() {
                std::os::unix::fs::chown(run.path(sub), Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        for tool in TOOLS.split_whitespace() {
            let found = host_tool(tool)
                .unwrap_or_else(|| panic!("{tool} is not installed here; the README needs it"));
            std::os::unix::fs::symlink(found, run.path("bin").join(tool)).unwrap();
        }
        let binary = env!("CARGO_BIN_EXE_keygate");
        std::os::unix::fs::symlink(binary, run.path("bin/keygate")).unwrap();
        let cargo = run.path("bin/cargo");
        std::fs::write(&cargo, CARGO_SHIM.replace("KEYGATE_BINARY", binary)).unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        run
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Writes every section's script and a driver that runs them one after the other, runs the
    /// driver, and ends the server the first section started. Also says how it was isolated.
    fn execute(&self, sections: &[Section]) -> (Vec<Outcome>, &'static str) {
        let state = self.path("work/state.sh");
        let servers = self.path("work/servers");
        let mut driver = String::from("set -u\n");
        let isolated = network_namespace(self.setpriv.is_some());
        if let Some(ip) = &isolated {
            let _ = writeln!(driver, "{} link set lo up || exit 99", quote(ip));
        }
        let mut outcomes = Vec::new();
        for (index, section) in sections.iter().enumerate() {
            let dir = self.path(&format!("work/sections/{index:02}"));
            std::fs::create_dir(&dir).unwrap();
            if self.setpriv.is_some() {
                std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
            }
            let script = self.script(index, section, &dir, &state, &servers);
            std::fs::write(dir.join("script.sh"), &script.text).unwrap();
            let _ = writeln!(
                driver,
                "cd {dir} && {user}{timeout} --foreground {SECTION_TIMEOUT_SECS} {bash} script.sh \
                 > log 2>&1 < /dev/null; echo $? > {dir}/exit",
                dir = quote(&dir),
                user = match &self.setpriv {
                    Some(setpriv) => format!(
                        "{} --reuid={NOBODY} --regid={NOBODY} --clear-groups ",
                        quote(setpriv)
                    ),
                    None => String::new(),
                },
                timeout = quote(&self.path("bin/timeout")),
                bash = quote(&self.path("bin/bash")),
            );
            outcomes.push(Outcome {
                index,
                dir,
                out: self.path("work/out"),
                origin: script.origin,
            });
        }
        // The server outlives the section that started it, and a section that timed out may
        // leave a command behind: end everything in the driver's process group but the driver
        // (SIGTERM: the server stops gracefully), and wait for the server, so that nothing of
        // this run is left.
        let _ = writeln!(
            driver,
            "trap '' TERM; kill -TERM -- -$$ 2>/dev/null; \
             for pid in $(cat {servers} 2>/dev/null); do \
             while kill -0 $pid 2>/dev/null; do sleep 0.1; done; done",
            servers = quote(&servers)
        );
        std::fs::write(self.path("driver.sh"), driver).unwrap();

        let how = if isolated.is_some() {
            "in a network namespace of its own"
        } else {
            let free = std::net::TcpListener::bind(("127.0.0.1", README_PORT)).is_ok();
            assert!(
                free,
                "127.0.0.1:{README_PORT} is taken (a keygate of yours?) and network namespaces \
                 are unavailable here: the README test needs that port"
            );
            "on the host's loopback"
        };
        let mut command = match &isolated {
            Some(_) => {
                let mut command = Command::new(host_tool("unshare").unwrap());
                command
                    .args(unshare_args(self.setpriv.is_some()))
                    .arg(self.path("bin/bash"));
                command
            }
            None => Command::new(self.path("bin/bash")),
        };
        let mut driver = command
            .arg(self.path("driver.sh"))
            .env_clear()
            .env("PATH", self.path("bin"))
            .env("HOME", self.path("work/home"))
            .env("TMPDIR", self.path("work/tmp"))
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: what it leaves running can be ended as one.
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now()
            + Duration::from_secs(SECTION_TIMEOUT_SECS * (sections.len() as u64 + 1));
        loop {
            if let Some(status) = driver.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the README test's driver failed: {status}"
                );
                break;
            }
            if Instant::now() > deadline {
                // The driver is still running, so its process group is still this run's.
                let _ = Command::new(self.path("bin/bash"))
                    .args([
                        "-c",
                        "kill -KILL -- \"-$1\"",
                        "kill",
                        &driver.id().to_string(),
                    ])
                    .status();
                let _ = driver.wait();
                panic!("the README test's sections did not end in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (outcomes, how)
    }

    /// A section's script: its blocks, each command with an expected output captured.
    fn script(
        &self,
        index: usize,
        section: &Section,
        dir: &Path,
        state: &Path,
        servers: &Path,
    ) -> Script {
        let mut text = String::new();
        let mut origin = Vec::new();
        let mut line = |text: &mut String, from: Option<(usize, usize)>, content: &str| {
            text.push_str(content);
            text.push('\n');
            origin.push(from);
        };
        line(&mut text, None, "set -euo pipefail");
        line(&mut text, None, "shopt -s inherit_errexit");
        // Where a command failed, as bash's line number in this script.
        line(
            &mut text,
            None,
            &format!(
                "trap 'echo \"$? $LINENO\" > {}' ERR",
                quote(&dir.join("failed"))
            ),
        );
        if index == 0 {
            let names: Vec<String> = section.blocks.iter().flat_map(Block::assigned).collect();
            line(
                &mut text,
                None,
                &format!(
                    "trap 'jobs -p > {servers}; for name in {names}; do \
                     if [ -n \"${{!name+set}}\" ]; then declare -p \"$name\"; fi; done > {state}' EXIT",
                    servers = quote(servers),
                    names = names.join(" "),
                    state = quote(state),
                ),
            );
        } else {
            line(
                &mut text,
                None,
                &format!(
                    "if [ -f {state} ]; then source {state}; fi",
                    state = quote(state)
                ),
            );
        }
        for (block_index, block) in section.blocks.iter().enumerate() {
            for command in &block.commands {
                let captured = command.expected.is_some();
                if captured {
                    line(&mut text, Some((block_index, command.first)), "{");
                }
                for at in command.first..=command.last {
                    line(&mut text, Some((block_index, at)), &block.lines[at]);
                }
                if captured {
                    // Kept only when the command succeeds: a failed one is told as a failure,
                    // not as a wrong output.
                    let out =
                        output_file(&self.path("work/out"), index, block_index, command.first);
                    let partial = quote(&out.with_extension("partial"));
                    line(
                        &mut text,
                        Some((block_index, command.last)),
                        &format!(
                            "}} > {partial}; mv {partial} {out}; cat {out}",
                            out = quote(&out)
                        ),
                    );
                }
            }
        }
        Script { text, origin }
    }
}

impl Outcome {
    /// What went wrong in the section, and how many outputs were compared.
    fn judge(&self, section: &Section) -> (Vec<String>, usize) {
        let heading = format!("{} — {}", section.path, section.name);
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).ok();
        let log = read("log").unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        let mut problems = Vec::new();
        match read("exit").map(|code| code.trim().to_owned()).as_deref() {
            Some("0") => {}
            Some("124") => problems.push(format!(
                "{heading}: still running after {SECTION_TIMEOUT_SECS} s; its output ended with:\n{tail}"
            )),
            code => {
                let failed = read("failed").and_then(|failed| {
                    let (status, line) = failed.trim().split_once(' ')?;
                    let (block, at) = (*self.origin.get(line.parse::<usize>().ok()? - 1)?)?;
                    let block = &section.blocks[block];
                    Some(format!(
                        "{}: exit status {status} from `{}`",
                        block.place(at),
                        block.lines[at].trim()
                    ))
                });
                let what = failed.unwrap_or_else(|| format!("bash ended with {code:?}"));
                problems.push(format!("{heading}: {what}; its output ended with:\n{tail}"));
            }
        }
        let mut compared = 0;
        for (block_index, block) in section.blocks.iter().enumerate() {
            for command in &block.commands {
                let Some(expected) = &command.expected else {
                    continue;
                };
                // A command the section never reached has no output file: its failure is
                // already told above.
                let file = output_file(&self.out, self.index, block_index, command.first);
                let Ok(printed) = std::fs::read_to_string(file) else {
                    continue;
                };
                compared += 1;
                if !matches(&expected.text, &flatten(&printed)) {
                    problems.push(format!(
                        "{}: `{}` printed what the comment below it no longer says\n  \
                         expected: {}\n  printed:  {}",
                        block.place(expected.line),
                        block.lines[command.first].trim(),
                        expected.text,
                        printed.trim_end()
                    ));
                }
            }
        }
        (problems, compared)
    }
}

/// Where the output of a command (by section, block and first line) is kept.
fn output_file(out: &Path, section: usize, block: usize, line: usize) -> PathBuf {
    out.join(format!("{section}-{block}-{line}"))
}

/// A tool of the host by name, from the directories a fresh Debian puts on PATH.
fn host_tool(name: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// How `unshare` makes the network namespace: root needs no user namespace (and keeps the
/// user `nobody`, which a user namespace would not map); anyone else needs one.
fn unshare_args(as_root: bool) -> &'static [&'static str] {
    if as_root {
        &["--net"]
    } else {
        &["--net", "--map-root-user"]
    }
}

/// `ip`, when this machine lets the test make a network namespace of its own and bring its
/// loopback up.
fn network_namespace(as_root: bool) -> Option<PathBuf> {
    let ip = host_tool("ip")?;
    let works = Command::new(host_tool("unshare")?)
        .args(unshare_args(as_root))
        .arg(&ip)
        .args(["link", "set", "lo", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    works.then_some(ip)
}

/// `path` as one shell word.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn expected_output_is_matched_with_wildcards() {
    assert!(matches(
        "{\"token\":\"grpc://…@h…\"}",
        "{\"token\":\"grpc://a:b@h:1\"}"
    ));
    assert!(matches("…", ""));
    assert!(matches("a…b…c", "abc"));
    assert!(!matches("a…b…c", "acb"));
    assert!(!matches("a…a", "a"));
    assert!(!matches("204", "404"));
    let lines: Vec<String> = [
        "X=$(curl -s a \\",
        "   -d '{\"k\": 1,",
        "   \"l\": 2}')  # prose",
        "# {\"k\":…,",
        "#  \"l\":2}",
        "# Prose below, not output.",
        "echo \"a # b\" # c",
    ]
    .map(str::to_owned)
    .to_vec();
    let found = commands(&lines);
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].first, found[0].last), (0, 2));
    assert_eq!(
        found[0].expected.as_ref().unwrap().text,
        "{\"k\":…,\"l\":2}"
    );
    assert_eq!(found[1].code, ["echo \"a # b\" "]);
    assert!(found[1].expected.is_none());
}
