//! Agentex agent API keys: their types, how a request names a key's agent, the rules for key
//! names and for secrets chosen by the caller, how a signing secret is sealed to its row, and
//! the pages of a key list. Webhook signatures made with signing secrets are [`webhook`]'s.

pub mod webhook;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::agent::{Agent, AgentName, NAME_RULE};
use super::query_integer;
use super::secret::NewSecret;
use crate::error::{Error, FieldError, Location, Segment, Violation};
use crate::secrets::server_key::{Keyring, Sealed};
use crate::secrets::{PlainSecret, SecretKind};

/// What an agent API key is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = AgentAPIKeyType)]
pub enum AgentApiKeyType {
    /// A bearer key for Agentex's own services talking to the agent.
    Internal,
    /// A bearer key for everyone else, sent as `x-agent-api-key`.
    #[default]
    External,
    /// A GitHub webhook secret; the key's name is the repository's `full_name`.
    Github,
    /// A Slack app's signing secret; the key's name is the app's `api_app_id`.
    Slack,
}

impl AgentApiKeyType {
    pub const ALL: [AgentApiKeyType; 4] = [
        AgentApiKeyType::Internal,
        AgentApiKeyType::External,
        AgentApiKeyType::Github,
        AgentApiKeyType::Slack,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AgentApiKeyType::Internal => "internal",
            AgentApiKeyType::External => "external",
            AgentApiKeyType::Github => "github",
            AgentApiKeyType::Slack => "slack",
        }
    }

    pub fn from_db(value: &str) -> Option<AgentApiKeyType> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// The kind of secret a key of this type holds: a bearer key, or a signing secret the
    /// server must be able to read back.
    pub const fn secret_kind(self) -> SecretKind {
        match self {
            AgentApiKeyType::Internal | AgentApiKeyType::External => SecretKind::AgentexKey,
            AgentApiKeyType::Github | AgentApiKeyType::Slack => SecretKind::AgentexSigningSecret,
        }
    }

    pub const fn is_signing(self) -> bool {
        matches!(self.secret_kind(), SecretKind::AgentexSigningSecret)
    }
}

/// A refused request field; `field: None` refuses the request's `location` as a whole.
fn refused(location: Location, field: Option<&'static str>, message: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError {
        location,
        path: field
            .map(|field| Segment::Key(Cow::Borrowed(field)))
            .into_iter()
            .collect(),
        violation: Violation::Rule,
        message: message.into(),
        input: None,
    }])
}

/// Both results, or every refused field of both, so a client learns all its mistakes at once
/// (as FastAPI reports them); any other error stands alone.
pub fn all_of<A, B>(a: Result<A, Error>, b: Result<B, Error>) -> Result<(A, B), Error> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Error::Invalid(mut first)), Err(Error::Invalid(second))) => {
            first.extend(second);
            Err(Error::Invalid(first))
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    }
}

/// Agentex's answer for a resource that does not exist, naming it as the client did.
pub fn no_such_item(field: &str, value: &str) -> Error {
    Error::NoSuchItem(format!("Item with {field} '{value}' does not exist."))
}

/// How a request names the agent a key belongs to: by id or by name, exactly one of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRef {
    Id(Uuid),
    Name(AgentName),
}

impl AgentRef {
    /// Reads `agent_id` | `agent_name` at `location`; an empty value counts as absent, as in
    /// Agentex. A value that could not name an agent is refused without being repeated, so that
    /// only an agent's possible id or name ever comes back in a 404.
    pub fn parse(
        agent_id: Option<String>,
        agent_name: Option<String>,
        location: Location,
    ) -> Result<AgentRef, Error> {
        let given = |value: Option<String>| value.filter(|value| !value.is_empty());
        match (given(agent_id), given(agent_name)) {
            (Some(id), None) => Uuid::parse_str(&id)
                .map(AgentRef::Id)
                .map_err(|_| refused(location, Some("agent_id"), "it must be a UUID")),
            (None, Some(name)) => parse_agent_name(&name, location).map(AgentRef::Name),
            _ => Err(refused(
                location,
                None,
                "exactly one of agent_id or agent_name must be given",
            )),
        }
    }

    /// Agentex's 404 for an agent the organization does not have.
    pub fn missing(&self) -> Error {
        match self {
            AgentRef::Id(id) => no_such_item("id", &id.to_string()),
            AgentRef::Name(name) => no_such_item("name", name.as_str()),
        }
    }
}

/// An `agent_name` at `location` that could name an agent. A keygate secret pasted here is
/// refused like a bad name, and neither is repeated.
pub fn parse_agent_name(name: &str, location: Location) -> Result<AgentName, Error> {
    AgentName::parse(name)
        .ok()
        .filter(|_| PlainSecret::parse(name).is_err())
        .ok_or_else(|| refused(location, Some("agent_name"), NAME_RULE))
}

/// A key's name: 1 to 256 characters, not only white space, no control characters. It is
/// free text in Agentex, and a GitHub repository's `full_name` runs up to 140 characters.
pub fn parse_key_name(value: String, location: Location) -> Result<String, Error> {
    if value.trim().is_empty() || value.chars().count() > 256 {
        let message = "it must contain between 1 and 256 characters";
        return Err(refused(location, Some("name"), message));
    }
    if value.chars().any(char::is_control) {
        let message = "it must not contain control characters";
        return Err(refused(location, Some("name"), message));
    }
    Ok(value)
}

/// What a caller-chosen `api_key` must be besides strong ([`crate::secrets::chosen`]):
/// printable ASCII, so that it travels unchanged in a header, and of a bounded length.
pub const CHOSEN_KEY_CHARS: &str = "it must be at most 512 printable ASCII characters";

/// A secret chosen by the caller instead of a minted one: [`CHOSEN_KEY_CHARS`], and as strong
/// as every chosen secret must be. A space passes here so that the shared judge names it.
pub struct ChosenKey(String);

impl ChosenKey {
    /// `value`, given as the body's `field`, when it is acceptable as a chosen key.
    pub fn parse(field: &'static str, value: String) -> Result<ChosenKey, Error> {
        if value.len() > 512 || !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(Error::invalid(field, CHOSEN_KEY_CHARS));
        }
        crate::secrets::chosen::check(&value)
            .map_err(|rule| Error::invalid(field, format!("it {rule}")))?;
        Ok(ChosenKey(value))
    }
}

/// What a create request asks for, once every field has passed its rule.
pub struct KeySpec {
    pub name: String,
    pub api_key_type: AgentApiKeyType,
    pub chosen: Option<ChosenKey>,
}

impl KeySpec {
    /// Checks the body's `name`, `api_key_type` (default `external`) and chosen key (the
    /// body's `api_key`, or another field's: `(field, value)`), reporting every refused field.
    /// A Slack key needs its chosen key: it is the Slack app's signing secret, which Slack
    /// generates.
    pub fn parse(
        name: Option<String>,
        api_key_type: Option<AgentApiKeyType>,
        (field, api_key): (&'static str, Option<String>),
    ) -> Result<KeySpec, Error> {
        let api_key_type = api_key_type.unwrap_or_default();
        let name =
            Error::required("name", name).and_then(|name| parse_key_name(name, Location::Body));
        let chosen = match api_key {
            Some(value) => ChosenKey::parse(field, value).map(Some),
            None if api_key_type == AgentApiKeyType::Slack => Err(Error::invalid(
                field,
                format!("a slack key is the Slack app's signing secret: give it as {field}"),
            )),
            None => Ok(None),
        };
        let (name, chosen) = all_of(name, chosen)?;
        Ok(KeySpec {
            name,
            api_key_type,
            chosen,
        })
    }
}

/// The longest `forward_path` a webhook trigger takes.
const FORWARD_PATH_MAX: usize = 1024;

/// Where Agentex's forward ingress receives a webhook trigger's deliveries for `agent`:
/// `/agents/forward/name/{agent}/{forward_path}`. `forward_path` is the agent's own subpath
/// (`github-pr/<config-id>`): URL path characters only, no `.` or `..` segment, no query or
/// fragment; leading `/` are dropped. Agent names need no escaping in a path.
pub fn forward_route(agent: &AgentName, forward_path: &str) -> Result<String, Error> {
    let path = forward_path.trim_start_matches('/');
    let path_char = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c);
    let refused = |message| Err(Error::invalid("forward_path", message));
    if path.is_empty() || path.len() > FORWARD_PATH_MAX {
        return refused("it must be a path of 1 to 1024 characters");
    }
    if !path.chars().all(path_char) {
        return refused("it may hold only URL path characters (no spaces, `?` or `#`)");
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return refused("it must not have `.` or `..` segments");
    }
    Ok(format!("/agents/forward/name/{}/{path}", agent.as_str()))
}

/// A public base URL under which clients reach Agentex's routes: `http` or `https`, a host, an
/// optional path prefix; no credentials, query or fragment. Returned without a trailing `/`.
pub fn parse_public_url(value: &str) -> Result<String, String> {
    let url =
        url::Url::parse(value).map_err(|_| "it must be an absolute http(s) URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("it must be an absolute http(s) URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not carry credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it must not have a query or a fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// What a signing secret's ciphertext is bound to: its row, its agent and its type, so that
/// a ciphertext copied to another row does not open there.
pub fn sealing_context(id: Uuid, agent_id: Uuid, api_key_type: AgentApiKeyType) -> Vec<u8> {
    let mut context = b"agent_api_keys/".to_vec();
    context.extend_from_slice(id.as_bytes());
    context.extend_from_slice(agent_id.as_bytes());
    context.extend_from_slice(api_key_type.as_str().as_bytes());
    context
}

/// An agent API key about to be stored: its secret's digest, and for a signing secret the
/// secret sealed under the server key.
pub struct NewAgentApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub name: String,
    pub api_key_type: AgentApiKeyType,
    /// Its secret; a signing secret's is also sealed under the server key.
    pub secret: NewSecret,
}

impl NewAgentApiKey {
    /// A key of `agent` with the chosen secret or a minted one, working until `expires_at` if
    /// given, returned in plain text for the one response that shows it.
    pub fn new(
        agent: &Agent,
        spec: KeySpec,
        expires_at: Option<DateTime<Utc>>,
        server_key: &Keyring,
    ) -> (NewAgentApiKey, PlainSecret) {
        let kind = spec.api_key_type.secret_kind();
        let plain = match spec.chosen {
            Some(ChosenKey(value)) => PlainSecret::chosen(kind, value),
            None => PlainSecret::mint(kind),
        };
        let id = Uuid::now_v7();
        let secret = stored_secret(
            id,
            agent.id,
            spec.api_key_type,
            &plain,
            expires_at,
            server_key,
        );
        let key = NewAgentApiKey {
            id,
            org_id: agent.org_id,
            agent_id: agent.id,
            name: spec.name,
            api_key_type: spec.api_key_type,
            secret,
        };
        (key, plain)
    }
}

/// The stored form of `plain`, a secret of key `id` of `agent_id`: its digest and, for a
/// signing secret, the secret sealed under the server key and bound to the key.
pub fn stored_secret(
    id: Uuid,
    agent_id: Uuid,
    api_key_type: AgentApiKeyType,
    plain: &PlainSecret,
    expires_at: Option<DateTime<Utc>>,
    server_key: &Keyring,
) -> NewSecret {
    let sealed = api_key_type.is_signing().then(|| {
        let context = sealing_context(id, agent_id, api_key_type);
        server_key.seal(plain.expose().as_bytes(), &context)
    });
    NewSecret {
        sealed,
        ..NewSecret::from_plain(api_key_type.secret_kind(), plain, expires_at)
    }
}

/// A stored agent API key, with its agent's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub name: String,
    pub api_key_type: AgentApiKeyType,
    pub created_at: DateTime<Utc>,
}

impl AgentApiKey {
    /// The plain signing secret `sealed` of this github or slack key. A sealed secret the
    /// server key cannot open (another server key, an altered or moved row) is an internal
    /// error, logged with both key ids.
    pub fn signing_secret(
        &self,
        sealed: &Sealed,
        server_key: &Keyring,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let context = sealing_context(self.id, self.agent_id, self.api_key_type);
        server_key.open(sealed, &context).ok_or_else(|| {
            Error::internal(format!(
                "the signing secret of agent API key {} (sealed by server key {}) does not open with server key {}",
                self.id,
                sealed.key_id,
                server_key.id()
            ))
        })
    }
}

/// Which part of a key list to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// Reads the query's `limit` (1 to 1000, default 50) and `page_number` (from 1, default 1),
    /// reporting both when both are wrong. A page past the end is empty.
    pub fn parse(limit: Option<String>, page_number: Option<String>) -> Result<Page, Error> {
        let limit = query_integer("limit", limit, 50, 1..=1000);
        let page = query_integer("page_number", page_number, 1, 1..=i128::MAX);
        let (limit, page) = all_of(limit, page)?;
        // A page past any list (an offset past `i64`) is as empty as the last page past it.
        let offset = i64::try_from((page - 1).saturating_mul(limit)).unwrap_or(i64::MAX);
        Ok(Page {
            limit: limit as i64,
            offset,
        })
    }
}

/// The key of an `Authorization: AgentKey <key>` header value, as Agentex's clients send it.
pub fn agent_key_credential(value: &str) -> Option<&str> {
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("AgentKey").then(|| key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::server_key::ServerKey;

    #[test]
    fn a_forward_route_is_the_agents_ingress_and_a_plain_subpath() {
        let agent = AgentName::parse("support-bot").unwrap();
        assert_eq!(
            forward_route(&agent, "/github-pr/cfg-1").unwrap(),
            "/agents/forward/name/support-bot/github-pr/cfg-1"
        );
        for bad in ["", "/", "a b", "x?y=1", "x#y", "../admin", "a/./b", "é"] {
            assert!(forward_route(&agent, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_public_url_is_http_with_a_host_and_no_trailing_slash() {
        assert_eq!(
            parse_public_url("https://agentex.example.com/").unwrap(),
            "https://agentex.example.com"
        );
        assert_eq!(
            parse_public_url("http://10.0.0.5:5003/prefix/").unwrap(),
            "http://10.0.0.5:5003/prefix"
        );
        for bad in [
            "agentex.example.com",
            "ftp://h",
            "https://u:p@h",
            "https://h/?q=1",
            "https://h/#f",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad:?}");
        }
    }

    fn chosen(value: &str) -> bool {
        ChosenKey::parse("api_key", value.to_owned()).is_ok()
    }

    #[test]
    fn chosen_keys_are_printable_ascii_and_strong() {
        assert!(chosen("8f742231b10e8888abcd99edabcd85a5"));
        for refused in [
            "ünïcödé-Qm4-Zt81_xLp09AvRw-0c9f3a1d", // not ASCII
            "tab\tinside-Qm4-Zt81_xLp09AvRw-0c9f3a1d",
            &"8f742231b10e8888abcd99edabcd85a5".repeat(17), // over 512 characters
            "password1234password1234password",
            "8f742231b10e8888 abcd99edabcd85a5",
            "kgk_8f742231b10e8888abcd99edabcd85a5",
        ] {
            assert!(!chosen(refused), "{refused}");
        }
    }

    #[test]
    fn an_agent_is_named_by_exactly_one_of_id_or_name() {
        let id = Uuid::now_v7();
        let parse = |id: Option<&str>, name: Option<&str>| {
            AgentRef::parse(id.map(Into::into), name.map(Into::into), Location::Body)
        };
        assert_eq!(
            parse(Some(&id.to_string()), None).unwrap(),
            AgentRef::Id(id)
        );
        assert_eq!(
            parse(Some(""), Some("edge-1")).unwrap(),
            AgentRef::Name(AgentName::parse("edge-1").unwrap()),
            "an empty value counts as absent"
        );
        for (id, name) in [
            (None, None),
            (Some("x"), Some("edge-1")),
            (Some(""), Some("")),
        ] {
            assert!(parse(id, name).is_err(), "{id:?} {name:?}");
        }
        assert!(parse(Some("not-a-uuid"), None).is_err());
        let minted = PlainSecret::mint(SecretKind::AgentexKey);
        assert!(parse(None, Some(minted.expose())).is_err());
    }

    #[test]
    fn a_slack_key_needs_the_apps_signing_secret() {
        let spec = |kind, key: Option<&str>| {
            KeySpec::parse(
                Some("A0123".into()),
                Some(kind),
                ("api_key", key.map(Into::into)),
            )
        };
        assert!(spec(AgentApiKeyType::Slack, None).is_err());
        assert!(
            spec(
                AgentApiKeyType::Slack,
                Some("8f742231b10e8888abcd99yyyzzz85a5")
            )
            .is_ok()
        );
        assert!(spec(AgentApiKeyType::Github, None).is_ok());
    }

    #[test]
    fn every_refused_field_is_reported() {
        match KeySpec::parse(None, None, ("api_key", Some("weak".into()))) {
            Err(Error::Invalid(fields)) => {
                let paths: Vec<_> = fields.iter().map(FieldError::dotted_path).collect();
                assert_eq!(paths, ["name", "api_key"]);
            }
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn pages_are_bounded() {
        let page = |limit: Option<&str>, number: Option<&str>| {
            Page::parse(limit.map(Into::into), number.map(Into::into))
        };
        assert_eq!(
            page(None, None).unwrap(),
            Page {
                limit: 50,
                offset: 0
            }
        );
        assert_eq!(
            page(Some("10"), Some("3")).unwrap(),
            Page {
                limit: 10,
                offset: 20
            }
        );
        assert_eq!(
            page(Some("1000"), Some("18446744073709551615"))
                .unwrap()
                .offset,
            i64::MAX
        );
        for (limit, number) in [
            ("0", "1"),
            ("1001", "1"),
            ("abc", "1"),
            ("", "1"),
            ("5", "0"),
            ("5", "-1"),
        ] {
            assert!(page(Some(limit), Some(number)).is_err(), "{limit} {number}");
        }
        match page(Some("0"), Some("x")) {
            Err(Error::Invalid(fields)) => assert_eq!(fields.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sealed_secret_opens_only_in_its_own_row() {
        let server_key = Keyring::from(ServerKey::from_bytes(&[3; 32]));
        let agent = Agent {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "edge".into(),
            mode: crate::domain::agent::AgentMode::Standard,
            created_at: Utc::now(),
        };
        let spec = KeySpec::parse(
            Some("octo/repo".into()),
            Some(AgentApiKeyType::Github),
            ("api_key", None),
        )
        .unwrap();
        let (new, plain) = NewAgentApiKey::new(&agent, spec, None, &server_key);
        assert!(plain.expose().starts_with("agx_whsec_"));
        let stored = AgentApiKey {
            id: new.id,
            org_id: new.org_id,
            agent_id: new.agent_id,
            agent_name: agent.name.clone(),
            name: new.name.clone(),
            api_key_type: new.api_key_type,
            created_at: new.secret.created_at,
        };
        let sealed = new.secret.sealed.clone().unwrap();
        let opened = stored.signing_secret(&sealed, &server_key).unwrap();
        assert_eq!(opened.as_slice(), plain.expose().as_bytes());
        let moved = AgentApiKey {
            id: Uuid::now_v7(),
            ..stored.clone()
        };
        assert!(moved.signing_secret(&sealed, &server_key).is_err());
        let retyped = AgentApiKey {
            api_key_type: AgentApiKeyType::Slack,
            ..stored
        };
        assert!(retyped.signing_secret(&sealed, &server_key).is_err());
    }

    #[test]
    fn the_agent_key_scheme_is_read_in_any_case() {
        assert_eq!(agent_key_credential("AgentKey abc"), Some("abc"));
        assert_eq!(agent_key_credential("agentkey  abc "), Some("abc"));
        assert_eq!(agent_key_credential("Bearer abc"), None);
        assert_eq!(agent_key_credential("abc"), None);
    }
}
