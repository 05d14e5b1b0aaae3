//! A key's usage as every family reads it: `?hours=` (1 to 720, default 24) asks for the hours
//! up to and including the current one, and the answer has every hour of them, zero where the
//! key was not used, with their total. The native, hoop and Agentex families answer
//! [`UsageView`]; Ops Manager answers the same hours in its list document.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::secret::now;
use crate::domain::usage::{Usage, Window};
use crate::error::Error;

/// `?hours=`: how many hours of usage to read.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Hours to read, up to and including the current one (which is still counting).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 720, default = 24)]
    pub hours: Option<String>,
}

impl UsageParams {
    /// The hours asked for, as of now; a refused `hours` is the client's mistake (4xx).
    pub fn window(self) -> Result<Window, Error> {
        Window::hours(self.hours, now())
    }
}

/// A key's uses per hour: every verification that found it valid, every authentication with it
/// (API keys, Ops Manager key pairs) and every webhook signature checked with it, over all the
/// secrets it has had (a rotated key's predecessors too). Counted in memory and written every
/// few seconds, so the last seconds' uses may not show yet.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageView {
    /// The start of the first hour (UTC).
    pub start: DateTime<Utc>,
    /// The end of the last hour, the current one.
    pub end: DateTime<Utc>,
    /// Uses over all the hours.
    #[schema(example = 42)]
    pub total_uses: u64,
    /// Every hour of the window, oldest first.
    pub hours: Vec<HourUses>,
}

/// Uses in one hour.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HourUses {
    /// The hour's start (UTC).
    pub start: DateTime<Utc>,
    #[schema(example = 3)]
    pub uses: u64,
}

impl From<Usage> for UsageView {
    fn from(usage: Usage) -> UsageView {
        UsageView {
            start: usage.window.start,
            end: usage.window.end(),
            total_uses: usage.total,
            hours: usage
                .hours
                .into_iter()
                .map(|(start, uses)| HourUses { start, uses })
                .collect(),
        }
    }
}
