//! hoop agents: the name rule, the execution modes, and an agent as stored.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::secret::NewSecret;
use crate::error::Error;

/// hoop's message for a name that breaks its rule, kept word for word for its clients.
pub const NAME_RULE: &str = "it must contain between 3 and 254 alphanumeric characters, it may include (-), (_) or (.) characters";

/// A name that satisfies hoop's rule `^[a-zA-Z0-9_]+(?:[-\.]?[a-zA-Z0-9_]+){2,253}$`, read as its
/// message states it: at most 254 characters, at least three word characters, and a `-` or `.`
/// only singly and only between word characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentName(String);

impl AgentName {
    pub fn parse(value: &str) -> Result<AgentName, Error> {
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let bytes = value.as_bytes();
        let mut words = 0usize;
        let mut previous_was_separator = true; // a leading separator is refused like a doubled one
        for &b in bytes {
            if is_word(b) {
                words += 1;
                previous_was_separator = false;
            } else if (b == b'-' || b == b'.') && !previous_was_separator {
                previous_was_separator = true;
            } else {
                return Err(Error::invalid("name", NAME_RULE));
            }
        }
        if previous_was_separator || words < 3 || bytes.len() > 254 {
            return Err(Error::invalid("name", NAME_RULE));
        }
        Ok(AgentName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// How the agent runs: on its own (`standard`) or beside another process (`embedded`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    #[default]
    Standard,
    Embedded,
}

impl AgentMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentMode::Standard => "standard",
            AgentMode::Embedded => "embedded",
        }
    }

    /// An absent mode is `standard`; an explicit unknown one (even `""`) is refused.
    pub fn parse(value: Option<&str>) -> Result<AgentMode, Error> {
        match value {
            None | Some("standard") => Ok(AgentMode::Standard),
            Some("embedded") => Ok(AgentMode::Embedded),
            Some(_) => Err(Error::invalid(
                "mode",
                "it must be one of standard or embedded",
            )),
        }
    }
}

/// An agent about to be stored, with its first key.
#[derive(Clone, Debug)]
pub struct NewAgent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: AgentName,
    pub mode: AgentMode,
    pub secret: NewSecret,
}

/// A stored agent: the owner of its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub mode: AgentMode,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_hoop_accepts() {
        for name in [
            "abc",
            "default",
            "my-agent",
            "my.agent_01",
            "a-b.c",
            "___",
            &"a".repeat(254),
        ] {
            assert!(AgentName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_names_hoop_refuses() {
        for name in [
            "",
            "ab",
            "a-b",
            "-abc",
            "abc-",
            "a--bc",
            "a.-bc",
            "ab c",
            "ábc",
            "a/bc",
            &"a".repeat(255),
        ] {
            assert!(AgentName::parse(name).is_err(), "{name}");
        }
    }

    /// The hand-written rule agrees with hoop's own regex (plus the 254-character bound its
    /// message states) on every string of a large random sample.
    #[test]
    fn agrees_with_hoops_regex() {
        use rand::{Rng, SeedableRng};
        let hoop = regex::Regex::new(r"^[a-zA-Z0-9_]+(?:[-\.]?[a-zA-Z0-9_]+){2,253}$").unwrap();
        let alphabet: Vec<char> = "aZ9_-. /é".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50_000 {
            let len = rng.random_range(0..10);
            let name: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            assert_eq!(
                AgentName::parse(&name).is_ok(),
                hoop.is_match(&name),
                "{name:?}"
            );
        }
        for len in [253, 254, 255, 300] {
            let name = "ab".repeat(len / 2) + &"c".repeat(len % 2);
            assert_eq!(
                AgentName::parse(&name).is_ok(),
                hoop.is_match(&name) && len <= 254,
                "{len}"
            );
        }
    }

    #[test]
    fn mode_defaults_only_when_absent() {
        assert_eq!(AgentMode::parse(None).unwrap(), AgentMode::Standard);
        assert_eq!(
            AgentMode::parse(Some("embedded")).unwrap(),
            AgentMode::Embedded
        );
        assert!(AgentMode::parse(Some("")).is_err());
        assert!(AgentMode::parse(Some("Standard")).is_err());
    }
}
