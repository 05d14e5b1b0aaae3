//! Lists by the page, in each family's shape: keygate's own lists answer
//! `{"items": [...], "next_cursor": ...}`; hoop's keep their bare arrays and carry the next page
//! in an RFC 8288 `Link` header. A cursor is the last key of the page, base64url-encoded so that
//! clients treat it as opaque.

use axum::http::header::LINK;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::domain::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageKey, PageRequest};
use crate::error::Error;

/// `?limit=&cursor=`: which page of a list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<u32>,
    /// The previous page's next cursor (`next_cursor`, or the `cursor` of its `Link: rel="next"`).
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn request<K: PageKey>(&self) -> Result<PageRequest<K>, Error> {
        page_request(self.limit, self.cursor.as_deref())
    }
}

/// The page a list's `limit` and `cursor` ask for.
pub fn page_request<K: PageKey>(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<PageRequest<K>, Error> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid_query(
            "limit",
            format!("it must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = cursor.map(read_cursor).transpose()?;
    Ok(PageRequest { limit, after })
}

pub fn write_cursor<K: PageKey>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(key.write())
}

/// The key a cursor of [`write_cursor`] holds; anything else is refused (422), a NUL character
/// included, since PostgreSQL cannot compare text holding one.
pub fn read_cursor<K: PageKey>(cursor: &str) -> Result<K, Error> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|text| !text.contains('\0'))
        .and_then(|text| K::read(&text))
        .ok_or_else(|| Error::invalid_query("cursor", "it is not a cursor this server issued"))
}

/// keygate's list document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Items<T> {
    pub fn from_page<R: Into<T>, K: PageKey>(page: Page<R, K>) -> Items<T> {
        Items {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next.as_ref().map(write_cursor),
        }
    }
}

/// A bare JSON array with `Link: <…>; rel="next"` when another page follows.
pub struct Linked<T> {
    items: Vec<T>,
    next: Option<HeaderValue>,
}

impl<T> Linked<T> {
    /// `uri` is the request's own (as the client sent it, prefix included): the next page's
    /// link repeats its path and parameters with the next cursor.
    pub fn from_page<R: Into<T>, K: PageKey>(page: Page<R, K>, uri: &Uri, limit: u32) -> Linked<T> {
        let next = page.next.as_ref().map(|key| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            let kept = uri.query().unwrap_or_default();
            for (name, value) in url::form_urlencoded::parse(kept.as_bytes()) {
                if name != "cursor" && name != "limit" {
                    query.append_pair(&name, &value);
                }
            }
            query.append_pair("limit", &limit.to_string());
            query.append_pair("cursor", &write_cursor(key));
            let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish());
            // The path was a valid URI and the query is percent-encoded: always a valid value.
            HeaderValue::try_from(link).expect("a link built from a URI is a header value")
        });
        Linked {
            items: page.items.into_iter().map(Into::into).collect(),
            next,
        }
    }
}

impl<T: Serialize> IntoResponse for Linked<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.items).into_response();
        if let Some(link) = self.next {
            response.headers_mut().insert(LINK, link);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_cursor_reads_back_as_the_key_it_was_made_from() {
        let id = Uuid::now_v7();
        let request: PageRequest<Uuid> = page_request(Some(5), Some(&write_cursor(&id))).unwrap();
        assert_eq!(request.after, Some(id));
        assert_eq!(request.limit, 5);
    }

    #[test]
    fn limits_outside_1_to_1000_and_foreign_cursors_are_refused() {
        assert!(page_request::<String>(Some(0), None).is_err());
        assert!(page_request::<String>(Some(1001), None).is_err());
        assert!(page_request::<Uuid>(None, Some("not base64!")).is_err());
        assert!(page_request::<Uuid>(None, Some(&write_cursor(&"edge-1".to_owned()))).is_err());
        assert_eq!(page_request::<String>(None, None).unwrap().limit, 100);
    }

    #[test]
    fn the_next_link_keeps_the_path_and_filters_and_replaces_the_cursor() {
        let uri: Uri = "/api/agents?limit=2&cursor=old&tag=a%20b".parse().unwrap();
        let page = Page {
            items: vec![1, 2],
            next: Some("edge-2".to_owned()),
        };
        let linked = Linked::<i32>::from_page(page, &uri, 2);
        assert_eq!(
            linked.next.unwrap().to_str().unwrap(),
            format!(
                "</api/agents?tag=a+b&limit=2&cursor={}>; rel=\"next\"",
                write_cursor(&"edge-2".to_owned())
            )
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::PROPERTY_CASES))]

        #[test]
        fn any_cursor_is_read_or_refused_without_panicking(
            cursor in "\\PC{0,120}|[A-Za-z0-9_-]{0,120}",
        ) {
            let _ = read_cursor::<String>(&cursor);
            let _ = read_cursor::<Uuid>(&cursor);
            let _ = read_cursor::<(chrono::DateTime<chrono::Utc>, Uuid)>(&cursor);
        }

        #[test]
        fn every_key_reads_back_from_its_cursor(
            name in "[^\\x00]{0,60}",
            id in proptest::prelude::any::<u128>(),
            seconds in 0i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
        ) {
            let id = Uuid::from_u128(id);
            let at = chrono::DateTime::from_timestamp(seconds, nanos).unwrap();
            proptest::prop_assert_eq!(read_cursor::<String>(&write_cursor(&name)).ok(), Some(name));
            proptest::prop_assert_eq!(read_cursor::<Uuid>(&write_cursor(&id)).ok(), Some(id));
            proptest::prop_assert_eq!(read_cursor(&write_cursor(&(at, id))).ok(), Some((at, id)));
        }

        #[test]
        fn a_cursor_holding_a_nul_character_is_refused(name in "[a-z]{0,10}\\x00[a-z]{0,10}") {
            proptest::prop_assert!(read_cursor::<String>(&URL_SAFE_NO_PAD.encode(&name)).is_err());
        }
    }
}
