//! Printing answers: JSON as the server sent it, text for people (`field  value` lines, a table
//! for lists), or `NAME=value` lines that a shell can `source` and a CI job can append to its
//! environment file.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::ValueEnum;
use serde_json::Value;

use super::client::Failure;
use crate::secrets::SecretKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Env,
}

/// How a resource is shown.
pub struct Shape {
    /// Prefix of its `--output env` names, e.g. `KEYGATE_AGENT`.
    pub env_prefix: &'static str,
    /// Field names given another name in `--output env` (`""`: the prefix alone), e.g. an
    /// agent's `token` is its DSN: `KEYGATE_AGENT_DSN`.
    pub env_names: &'static [(&'static str, &'static str)],
    /// The columns of a list's table, in order.
    pub columns: &'static [&'static str],
}

/// `value` as `format` asks.
pub fn one(format: Format, shape: &Shape, value: &Value) -> Result<String, Failure> {
    Ok(match format {
        Format::Json => json(value),
        Format::Text => {
            let rows: Vec<(String, String)> = fields(value)
                .into_iter()
                .map(|(path, value)| (path.join("."), value))
                .collect();
            aligned(&rows)
        }
        Format::Env => env(shape, value)?,
    })
}

/// `items` as `format` asks (env lines name one resource, so a list is refused earlier).
pub fn list(format: Format, shape: &Shape, items: &[Value]) -> String {
    match format {
        Format::Json => json(&Value::Array(items.to_vec())),
        Format::Text | Format::Env => table(shape.columns, items),
    }
}

/// Writes `text` to stdout. A reader that went away (`keygate agents list | head -1`) is not a
/// failure of the command.
pub fn emit(text: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Output(err.to_string()))
        }
        _ => Ok(()),
    }
}

fn json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Every scalar of `value` with its path: object keys, and for arrays of objects the element's
/// `connection_name` or `name` when it has one (credentials per connection), else its index.
fn fields(value: &Value) -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    collect(value, &mut Vec::new(), &mut found);
    found
}

fn collect(value: &Value, path: &mut Vec<String>, found: &mut Vec<(Vec<String>, String)>) {
    match value {
        Value::Null => {}
        Value::Object(object) => {
            for (key, value) in object {
                path.push(key.clone());
                collect(value, path, found);
                path.pop();
            }
        }
        Value::Array(items) if items.iter().all(|item| !item.is_object()) => {
            if !items.is_empty() {
                found.push((
                    path.clone(),
                    items.iter().map(scalar).collect::<Vec<_>>().join(","),
                ));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let key = ["connection_name", "name"]
                    .iter()
                    .find_map(|key| item[key].as_str())
                    .map_or_else(|| index.to_string(), str::to_owned);
                path.push(key);
                collect(item, path, found);
                path.pop();
            }
        }
        scalar_value => found.push((path.clone(), scalar(scalar_value))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn aligned(rows: &[(String, String)]) -> String {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (name, value) in rows {
        let _ = writeln!(text, "{name:width$}  {value}");
    }
    text
}

fn table(columns: &[&str], items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|column| match &item[*column] {
                    Value::Array(_) | Value::Object(_) => item[*column].to_string(),
                    value => scalar(value),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([column.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    let header: Vec<String> = columns.iter().map(|column| column.to_uppercase()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        let _ = writeln!(text, "{}", line.join("  ").trim_end());
    }
    text
}

/// `PREFIX_FIELD=value` lines that a shell's `source` and GitHub Actions' `$GITHUB_ENV` read
/// alike. `$GITHUB_ENV` takes everything after the `=` literally, quotes included, so no value
/// is quoted: one that a shell would read differently unquoted is left out, and named on stderr.
fn env(shape: &Shape, value: &Value) -> Result<String, Failure> {
    if !value.is_object() {
        return Err(Failure::Usage(
            "--output env needs an answer with fields".into(),
        ));
    }
    let mut value = value.clone();
    name_credential_secrets(&mut value);
    let mut text = String::new();
    let mut left_out = Vec::new();
    for (path, value) in fields(&value) {
        let mut name = shape.env_prefix.to_owned();
        for part in &path {
            let renamed = shape
                .env_names
                .iter()
                .find(|(field, _)| field == part)
                .map_or(part.as_str(), |(_, name)| *name);
            let part = env_word(renamed);
            if !part.is_empty() {
                name.push('_');
                name.push_str(&part);
            }
        }
        if reads_alike(&value) {
            let _ = writeln!(text, "{name}={value}");
        } else {
            left_out.push(name);
        }
    }
    if !left_out.is_empty() {
        // Names only: these values may hold the secret (a command, a connection string).
        eprintln!(
            "keygate: left out of the env lines, since their values would need quotes that \
             $GITHUB_ENV keeps (--output json has them): {}",
            left_out.join(", ")
        );
    }
    Ok(text)
}

/// The fields that may carry a machine credential's secret, the password first: ssh's user
/// name is the connection's name, which may look like a secret.
const CREDENTIAL_SECRET_FIELDS: [&str; 5] = [
    "password",
    "username",
    "secret_key",
    "proxy_token",
    "aws_secret_access_key",
];

/// Gives each machine credential (an object with a `connection_name`) a `secret` field, since
/// which field holds it depends on the protocol (the user name for databases, the password for
/// ssh, …), and drops a `password` that is not the secret (the databases' fixed `noop`), which
/// a `…_PASSWORD` line would pass off as one.
fn name_credential_secrets(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.contains_key("connection_name") {
                let secret = CREDENTIAL_SECRET_FIELDS.iter().find_map(|field| {
                    object
                        .get(*field)
                        .and_then(Value::as_str)
                        .filter(|value| value.starts_with(SecretKind::MachineCredential.prefix()))
                        .map(str::to_owned)
                });
                if let Some(secret) = secret {
                    if object.get("password").and_then(Value::as_str) != Some(secret.as_str()) {
                        object.remove("password");
                    }
                    object.insert("secret".into(), Value::String(secret));
                }
            }
            object.values_mut().for_each(name_credential_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(name_credential_secrets),
        _ => {}
    }
}

/// `pg-prod.v2` → `PG_PROD_V2`, `publicKey` → `PUBLIC_KEY`, `_id` → `ID`.
fn env_word(part: &str) -> String {
    let mut word = String::new();
    let mut after_lower = false;
    for c in part.chars() {
        if c.is_ascii_uppercase() && after_lower {
            word.push('_');
        }
        after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    word.trim_matches('_').to_owned()
}

/// Whether a shell's assignment `NAME=value` reads the value as written: no blank, quote,
/// expansion, operator or tilde.
fn reads_alike(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./?_-".contains(c))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const AGENT: Shape = Shape {
        env_prefix: "KEYGATE_AGENT",
        env_names: &[("token", "DSN")],
        columns: &["name", "mode"],
    };

    #[test]
    fn env_lines_name_fields_after_the_prefix() {
        let text = env(
            &AGENT,
            &json!({"token": "grpc://edge:xagt-abc@host:8010?mode=standard"}),
        )
        .unwrap();
        assert_eq!(
            text,
            "KEYGATE_AGENT_DSN=grpc://edge:xagt-abc@host:8010?mode=standard\n"
        );
    }

    const IDENTITY: Shape = Shape {
        env_prefix: "KEYGATE_MACHINE_IDENTITY",
        env_names: &[("credentials", "")],
        columns: &[],
    };

    #[test]
    fn env_lines_key_credentials_by_connection_and_name_their_secret() {
        let identity = json!({
            "name": "ci-bot",
            "description": null,
            "credentials": [
                {"connection_name": "pg-prod", "username": "kgmi_abc", "password": "noop"},
                {"connection_name": "kgmi_box", "username": "kgmi_box", "password": "kgmi_def"},
            ],
        });
        assert_eq!(
            env(&IDENTITY, &identity).unwrap(),
            "KEYGATE_MACHINE_IDENTITY_NAME=ci-bot\n\
             KEYGATE_MACHINE_IDENTITY_PG_PROD_CONNECTION_NAME=pg-prod\n\
             KEYGATE_MACHINE_IDENTITY_PG_PROD_USERNAME=kgmi_abc\n\
             KEYGATE_MACHINE_IDENTITY_PG_PROD_SECRET=kgmi_abc\n\
             KEYGATE_MACHINE_IDENTITY_KGMI_BOX_CONNECTION_NAME=kgmi_box\n\
             KEYGATE_MACHINE_IDENTITY_KGMI_BOX_USERNAME=kgmi_box\n\
             KEYGATE_MACHINE_IDENTITY_KGMI_BOX_PASSWORD=kgmi_def\n\
             KEYGATE_MACHINE_IDENTITY_KGMI_BOX_SECRET=kgmi_def\n"
        );
    }

    #[test]
    fn env_lines_leave_out_what_only_quotes_could_carry() {
        let identity = json!({
            "name": "ci-bot",
            "description": "it's for CI",
            "credentials": [{
                "connection_name": "mongo",
                "username": "kgmi_abc",
                "connection_string": "mongodb://kgmi_abc:noop@h:27017/app?directConnection=true&tls=false",
                "database_name": "",
            }],
        });
        assert_eq!(
            env(&IDENTITY, &identity).unwrap(),
            "KEYGATE_MACHINE_IDENTITY_NAME=ci-bot\n\
             KEYGATE_MACHINE_IDENTITY_MONGO_CONNECTION_NAME=mongo\n\
             KEYGATE_MACHINE_IDENTITY_MONGO_USERNAME=kgmi_abc\n\
             KEYGATE_MACHINE_IDENTITY_MONGO_DATABASE_NAME=\n\
             KEYGATE_MACHINE_IDENTITY_MONGO_SECRET=kgmi_abc\n"
        );
        for plain in [
            "grpc://edge:xagt-a_b@h:8010?mode=standard",
            "",
            "a=b,c/d%40",
        ] {
            assert!(reads_alike(plain), "{plain}");
        }
        for quoted in [
            "a b", "it's", "a&b", "$HOME", "~/x", "a;b", "`x`", "a\nb", "\"x\"",
        ] {
            assert!(!reads_alike(quoted), "{quoted}");
        }
    }

    #[test]
    fn env_words_are_upper_snake_case() {
        assert_eq!(env_word("publicKey"), "PUBLIC_KEY");
        assert_eq!(env_word("_id"), "ID");
        assert_eq!(env_word("pg-prod.v2"), "PG_PROD_V2");
    }

    #[test]
    fn tables_align_columns_and_show_absent_values() {
        let items = [
            json!({"name": "edge-1", "mode": "standard"}),
            json!({"name": "e"}),
        ];
        assert_eq!(
            table(AGENT.columns, &items),
            "NAME    MODE\nedge-1  standard\ne       -\n"
        );
    }
}
