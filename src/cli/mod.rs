//! The command-line client: `keygate agents create edge-1`, `keygate verify -`, and the other
//! noun-verb commands, each one a request (or a walk through pages) to a keygate server's API.
//!
//! A command turns its arguments into a [`Plan`] — the request, what the answer is, and how to
//! show it — and [`run`] carries it out: [`client`] sends it with retries that cannot duplicate
//! a creation, [`output`] prints the answer as text, JSON or `NAME=value` lines, and the outcome
//! is an [`Exit`] code a script can branch on. Secrets go to stdout only; everything else goes
//! to stderr. [`command`] puts these beside the server's commands as the binary's command line.

mod agentex;
mod client;
mod command;
mod hoop;
pub mod host;
mod native;
mod ops_manager;
mod output;
pub mod scan;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use url::Url;

use client::{Call, Client, Failure};
pub use command::{
    AdminKeyArgs, BackupArgs, Cli, Command, DatabaseArgs, KeyRotationArgs, RestoreArgs,
    ServerKeyVerb, command,
};
use output::{Format, Shape};

/// How the client reaches the server and shows its answers; accepted before or after the verb.
#[derive(Clone, Args)]
pub struct ClientArgs {
    /// The keygate server.
    #[arg(
        long,
        env = "KEYGATE_URL",
        default_value = "http://127.0.0.1:8009",
        global = true
    )]
    pub url: Url,

    /// API key to authenticate with. A flag's value shows in process listings: prefer the
    /// KEYGATE_TOKEN environment variable or --token-file.
    #[arg(long, env = "KEYGATE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// File holding the API key (a CI secret mount); wins over --token and KEYGATE_TOKEN.
    #[arg(long, env = "KEYGATE_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,

    /// Output: text (a table for lists), json, or env (`NAME=value` lines for a CI environment
    /// file). Default: text on a terminal, json otherwise.
    #[arg(long, short = 'o', value_enum, global = true)]
    pub output: Option<Format>,

    /// Retries after a connection failure, a 429 (after its Retry-After) or a 503.
    #[arg(long, default_value_t = 4, global = true)]
    pub retries: u32,

    /// Idempotency-Key sent with a create or rotate, so that re-running the same CI job gets
    /// the first run's answer (the same secret) instead of a second secret or a conflict.
    /// Default: a new key per invocation, reused by its own retries.
    #[arg(long, global = true, value_parser = parse_idempotency_key)]
    pub idempotency_key: Option<String>,
}

// Hand-written so that the token never reaches a debug print.
impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("output", &self.output)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

fn parse_idempotency_key(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("1 to 255 visible ASCII characters".into());
    }
    Ok(value.to_owned())
}

/// A command's arguments, turned into the request that carries it out (an `Err` is a usage
/// error the parser could not catch).
pub trait ToPlan {
    fn plan(self) -> Result<Plan, String>;
}

/// The client's commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// hoop agents and their keys, in DSN form (`grpc://name:xagt-…@host:port?mode=…`).
    #[command(subcommand)]
    Agents(hoop::AgentVerb),
    /// keygate API keys (bearer credentials of the API) and their roles.
    #[command(subcommand)]
    ApiKeys(native::ApiKeyVerb),
    /// Organizations (tenants), managed by the operators.
    #[command(subcommand)]
    Orgs(native::OrgVerb),
    /// The organization's policy: the longest lifetime of each kind of secret.
    #[command(subcommand)]
    Policy(native::PolicyVerb),
    /// Ops Manager projects.
    #[command(subcommand)]
    Projects(ops_manager::ProjectVerb),
    /// Ops Manager agent API keys of a project.
    #[command(subcommand)]
    ProjectAgentKeys(ops_manager::AgentKeyVerb),
    /// Ops Manager programmatic API key pairs of an organization (HTTP Digest).
    #[command(subcommand)]
    KeyPairs(ops_manager::KeyPairVerb),
    /// Agentex per-agent API keys.
    #[command(subcommand)]
    AgentexKeys(agentex::KeyVerb),
    /// Connections the gateway fronts.
    #[command(subcommand)]
    Connections(hoop::ConnectionVerb),
    /// Machine identities and their per-connection credentials.
    #[command(subcommand)]
    MachineIdentities(hoop::IdentityVerb),
    /// Ask the server whether a secret is valid, and whose it is (exit 8 when it is not).
    Verify(native::VerifyArgs),
    /// Read the audit trail, oldest first (narrow it with --since and the filters).
    Audit(native::AuditArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages, `keygate.1` and one per command (`keygate-agents-create.1`, …),
    /// into a directory, e.g. `keygate man ~/.local/share/man/man1`.
    Man {
        /// The directory the pages are written to (created if missing).
        dir: PathBuf,
    },
}

/// Exit codes, one per outcome a script may branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    /// The server refused the request as invalid (400, 422), or answered what the client could
    /// not read.
    Refused = 1,
    /// The command line is wrong (clap's own code for usage errors).
    Usage = 2,
    NotFound = 3,
    /// Already exists, or conflicts with the resource's state (409).
    Conflict = 4,
    /// No token given, a credential that does not work (401), or a role that may not (403).
    Unauthorized = 5,
    /// Still rate-limited (429) once the retries ran out.
    RateLimited = 6,
    /// The server could not be reached, or failed (5xx), once the retries ran out.
    Unavailable = 7,
    /// `verify`: the secret is not valid.
    Invalid = 8,
}

/// A time on the command line: RFC 3339, said with an example when it is not.
pub fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| "expected an RFC 3339 time, e.g. 2026-12-01T00:00:00Z".to_owned())
}

/// The exit codes as `--help` shows them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  refused by the server as invalid (400, 422), or an unreadable answer
  2  usage error
  3  not found (404)
  4  conflict: already exists, or a state that forbids it (409)
  5  no token given, not authenticated (401) or not allowed (403)
  6  rate-limited (429) after the retries
  7  server unreachable or failing (5xx) after the retries
  8  verify: the secret is not valid";

/// One command's request and how its answer is shown.
pub struct Plan {
    pub call: Call,
    pub shape: &'static Shape,
    pub answer: Answer,
}

/// What the answer to a plan's request is.
pub enum Answer {
    /// A resource, shown as it is.
    One,
    /// A resource holding a freshly minted secret, described here for the shown-once notice.
    Minted(&'static str),
    /// A list, fetched page by page (`page_size` items per request, default the API's most),
    /// up to `limit` items in all.
    List {
        paging: client::Paging,
        limit: Option<usize>,
        page_size: Option<usize>,
    },
    /// A deletion of the named resource.
    Deleted(String),
    /// `/verify`'s answer: the exit code says whether the secret is valid.
    Verdict,
}

/// Runs a client command, printing its answer, and returns its exit code.
pub async fn run(command: ClientCommand, client: ClientArgs) -> ExitCode {
    let plan = match command {
        ClientCommand::Agents(verb) => verb.plan(),
        ClientCommand::ApiKeys(verb) => verb.plan(),
        ClientCommand::Orgs(verb) => verb.plan(),
        ClientCommand::Policy(verb) => verb.plan(),
        ClientCommand::Projects(verb) => verb.plan(),
        ClientCommand::KeyPairs(verb) => verb.plan(),
        ClientCommand::ProjectAgentKeys(verb) => verb.plan(),
        ClientCommand::AgentexKeys(verb) => verb.plan(),
        ClientCommand::Connections(verb) => verb.plan(),
        ClientCommand::MachineIdentities(verb) => verb.plan(),
        ClientCommand::Verify(args) => args.plan(),
        ClientCommand::Audit(args) => args.plan(),
        ClientCommand::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command::command(), "keygate", &mut script);
            return finish(output::emit(&script).map(|()| Exit::Success));
        }
        ClientCommand::Man { dir } => return write_manual(&dir),
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(message) => return fail(Exit::Usage, &message),
    };
    let format = client.output.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    let client = match Client::new(&client) {
        Ok(client) => client,
        Err((exit, message)) => return fail(exit, &message),
    };
    finish(carry_out(&client, plan, format).await)
}

/// Writes a page for the binary and one for each command, so that every page a page refers to
/// (`keygate-agents(1)` in `keygate(1)`) is there.
fn write_manual(dir: &Path) -> ExitCode {
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(command::command(), dir));
    match written {
        Ok(()) => {
            eprintln!("Wrote the manual pages to {}: man keygate", dir.display());
            ExitCode::SUCCESS
        }
        Err(err) => fail(
            Exit::Refused,
            &format!("cannot write the manual pages to {}: {err}", dir.display()),
        ),
    }
}

fn finish(outcome: Result<Exit, Failure>) -> ExitCode {
    match outcome {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failure) => fail(failure.exit(), &failure.to_string()),
    }
}

async fn carry_out(client: &Client, plan: Plan, format: Format) -> Result<Exit, Failure> {
    let Plan {
        call,
        shape,
        answer,
    } = plan;
    match answer {
        Answer::List {
            paging,
            limit,
            page_size,
        } => {
            if format == Format::Env {
                return Err(Failure::Usage(
                    "--output env prints one resource; lists print as text or json".into(),
                ));
            }
            let items = client.list(call, paging, limit, page_size).await?;
            output::emit(output::list(format, shape, &items).as_bytes())?;
            Ok(Exit::Success)
        }
        Answer::Deleted(what) => {
            let reply = client.send(&call).await;
            match reply {
                Ok(_) => eprintln!("Deleted {what}."),
                // The first attempt may have deleted it before its answer was lost.
                Err(Failure::Status {
                    exit: Exit::NotFound,
                    after_lost_answer: true,
                    ..
                }) => eprintln!("Deleted {what} (a retry found it already gone)."),
                Err(failure) => return Err(failure),
            }
            Ok(Exit::Success)
        }
        Answer::One | Answer::Minted(_) | Answer::Verdict => {
            let reply = client.send(&call).await?;
            output::emit(output::one(format, shape, &reply.body)?.as_bytes())?;
            if let Answer::Minted(what) = answer {
                let replayed = reply.headers.get(crate::http::idempotency::REPLAYED)
                    == Some(&HeaderValue::from_static("true"));
                if replayed {
                    // Not "once": whoever sent this Idempotency-Key first was shown it too.
                    eprintln!(
                        "This is {what} as first minted for this Idempotency-Key: the server \
                         replayed its earlier answer rather than minting another."
                    );
                } else {
                    eprintln!("This is {what}; it is shown once: keygate keeps only its digest.");
                }
            }
            if let Answer::Verdict = answer {
                if reply.body.get("valid") != Some(&Value::Bool(true)) {
                    return Ok(Exit::Invalid);
                }
            }
            Ok(Exit::Success)
        }
    }
}

fn fail(exit: Exit, message: &str) -> ExitCode {
    eprintln!("keygate: {message}");
    ExitCode::from(exit as u8)
}

/// `--expires-at` and `--grace-period`, shared by every rotate command.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// How long the old secret keeps working, in seconds (0: it stops now).
    #[arg(long, value_name = "SECONDS")]
    pub grace_period: Option<u64>,
    /// When the new secret stops working (RFC 3339). Default: the old one's expiry.
    #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_time)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl RotateArgs {
    fn body(&self) -> Value {
        json!({
            "grace_period_seconds": self.grace_period,
            "expires_at": self.expires_at,
        })
    }
}

/// `--limit` and `--page-size`, shared by every list command.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Most items to print (default: all, fetched page by page).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Items asked for per request (default: the most the API allows).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_size: Option<u64>,
}

impl ListArgs {
    fn answer(&self, paging: client::Paging) -> Answer {
        Answer::List {
            paging,
            limit: self.limit.map(|limit| limit as usize),
            page_size: self.page_size.map(|size| size as usize),
        }
    }
}
