//! Keyset pagination: a list is ordered by a unique key, and a page is the rows after the last
//! key the client saw. Rows inserted while a client pages through never shift the pages it has
//! not read yet, so nothing is shown twice or skipped.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Rows per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most rows one page may hold.
pub const MAX_LIMIT: u32 = 1000;

/// Which page to read: at most `limit` rows whose key follows `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub after: Option<K>,
}

impl<K> PageRequest<K> {
    /// How many rows to read: one more than the page shows tells whether another follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The key to read after: the start of the list when there is no cursor. Names are never
    /// empty and ids are never nil, so every row's key follows the default.
    pub fn after_or_start(&self) -> K
    where
        K: Default + Clone,
    {
        self.after.clone().unwrap_or_default()
    }

    /// The page from up to [`PageRequest::fetch`] rows in key order.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> K) -> Page<T, K> {
        let limit = self.limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(key)
        } else {
            None
        };
        Page { items: rows, next }
    }
}

/// One page of a list, and the key to continue after when more rows follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    pub next: Option<K>,
}

/// A sort key that a cursor can carry: written as text and read back, refusing anything that is
/// not a key of its type.
pub trait PageKey: Sized {
    fn write(&self) -> String;
    fn read(text: &str) -> Option<Self>;
}

/// A unique name.
impl PageKey for String {
    fn write(&self) -> String {
        self.clone()
    }
    fn read(text: &str) -> Option<String> {
        Some(text.to_owned())
    }
}

/// A unique id; ids are UUIDv7, so id order is creation order.
impl PageKey for Uuid {
    fn write(&self) -> String {
        self.to_string()
    }
    fn read(text: &str) -> Option<Uuid> {
        Uuid::parse_str(text).ok()
    }
}

/// A time, with an id to order events of the same instant.
impl PageKey for (DateTime<Utc>, Uuid) {
    fn write(&self) -> String {
        format!("{}|{}", self.0.to_rfc3339(), self.1)
    }
    fn read(text: &str) -> Option<(DateTime<Utc>, Uuid)> {
        let (at, id) = text.split_once('|')?;
        let at = DateTime::parse_from_rfc3339(at).ok()?;
        Some((at.with_timezone(&Utc), Uuid::parse_str(id).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_ends_at_its_limit_and_names_the_key_to_continue_after() {
        let request = PageRequest::<u32> {
            limit: 2,
            after: None,
        };
        assert_eq!(request.fetch(), 3);
        let page = request.page(vec![1, 2, 3], |n| *n);
        assert_eq!(page.items, [1, 2]);
        assert_eq!(page.next, Some(2));
        let last = request.page(vec![4, 5], |n| *n);
        assert_eq!((last.items, last.next), (vec![4, 5], None));
    }

    #[test]
    fn keys_read_back_as_written_and_refuse_what_is_not_theirs() {
        let id = Uuid::now_v7();
        assert_eq!(Uuid::read(&id.write()), Some(id));
        assert_eq!(Uuid::read("edge-1"), None);
        let at = (Utc::now(), id);
        assert_eq!(<(DateTime<Utc>, Uuid)>::read(&at.write()), Some(at));
        assert_eq!(<(DateTime<Utc>, Uuid)>::read("2026-01-01T00:00:00Z"), None);
        assert_eq!(String::read("a|b"), Some("a|b".to_owned()));
    }
}
