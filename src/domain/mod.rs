//! The domain on the ground floor: what organizations, API keys, agents and stored secrets are,
//! and the rules their names and lifecycles follow. Storage, verification and the HTTP layer
//! build on these types; they depend only on the error type and the secret machinery.

pub mod agent;
pub mod agentex;
pub mod audit;
pub mod connections;
pub mod leak;
pub mod machine_credential;
pub mod machine_identities;
pub mod ops_manager;
pub mod org;
pub mod page;
pub mod policy;
pub mod secret;
pub mod usage;

use std::borrow::Cow;

use crate::error::{Error, FieldError, Location, Segment, Violation, bound};

/// A query parameter that must be an integer in `range`, `default` when absent. A bound
/// broken is told as the bound (FastAPI's `ge`/`le`), so a client knows which end it crossed.
pub fn query_integer(
    field: &'static str,
    value: Option<String>,
    default: i128,
    range: std::ops::RangeInclusive<i128>,
) -> Result<i128, Error> {
    let Some(value) = value else {
        return Ok(default);
    };
    // The words the extractors give a mistyped field, so every dialect reads it as one.
    let number = value.trim().parse::<i128>().map_err(|_| {
        Error::Invalid(vec![FieldError {
            location: Location::Query,
            path: vec![Segment::Key(Cow::Borrowed(field))],
            violation: Violation::WrongType { text: true },
            message: "expected an integer".into(),
            input: None,
        }])
    })?;
    if number < *range.start() {
        Err(Error::invalid_query(field, bound::at_least(*range.start())))
    } else if number > *range.end() {
        Err(Error::invalid_query(field, bound::at_most(*range.end())))
    } else {
        Ok(number)
    }
}
