//! Ops Manager's query options on every answer: `pretty=true` prints the JSON body indented,
//! with Ops Manager's `"name" : value` spacing; `envelope=true` wraps it as
//! `{"status": <HTTP status>, "content": <body>}` for clients that cannot read the status. The
//! HTTP status itself is kept, so a Digest client still sees its 401 challenge.

use std::io;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{Formatter, PrettyFormatter};

/// Ops Manager's options, read from the query string; anything but `true` is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Options {
    pretty: bool,
    envelope: bool,
}

impl Options {
    fn of(query: Option<&str>) -> Options {
        let mut options = Options::default();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let on = value.eq_ignore_ascii_case("true");
            match name.as_ref() {
                "pretty" => options.pretty = on,
                "envelope" => options.envelope = on,
                _ => {}
            }
        }
        options
    }
}

/// Applies the request's options to a response of the family.
pub async fn finish(query: Option<&str>, response: Response) -> Response {
    let options = Options::of(query);
    if options == Options::default() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Bodies here are built by keygate itself, small JSON documents or nothing.
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let content = if bytes.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => Some(value),
            Err(_) => return Response::from_parts(parts, Body::from(bytes)),
        }
    };
    let document = match (options.envelope, content) {
        // A status that forbids a body keeps none.
        (true, _)
            if matches!(
                parts.status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
            ) =>
        {
            return Response::from_parts(parts, Body::empty());
        }
        (true, Some(content)) => {
            serde_json::json!({"status": parts.status.as_u16(), "content": content})
        }
        (true, None) => serde_json::json!({"status": parts.status.as_u16()}),
        (false, Some(content)) => content,
        (false, None) => return Response::from_parts(parts, Body::empty()),
    };
    let rendered = if options.pretty {
        pretty(&document)
    } else {
        document.to_string().into_bytes()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(rendered))
}

/// JSON indented by two spaces with `"name" : value`, as Ops Manager prints it.
fn pretty(document: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, SpacedColons(PrettyFormatter::new()));
    document
        .serialize(&mut serializer)
        .expect("a JSON value serializes into memory");
    out
}

/// serde_json's pretty printer with a space before each colon.
struct SpacedColons<'a>(PrettyFormatter<'a>);

impl Formatter for SpacedColons<'_> {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b" : ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_on_only_when_true() {
        assert_eq!(
            Options::of(Some("pretty=true&envelope=TRUE")),
            Options {
                pretty: true,
                envelope: true
            }
        );
        assert_eq!(
            Options::of(Some("pretty=1&envelope=false")),
            Options::default()
        );
        assert_eq!(Options::of(None), Options::default());
    }

    #[test]
    fn pretty_output_spaces_colons_as_ops_manager_does() {
        let printed = pretty(&serde_json::json!({"_id": "a", "keys": [1, {"b": null}]}));
        assert_eq!(
            String::from_utf8(printed).unwrap(),
            "{\n  \"_id\" : \"a\",\n  \"keys\" : [\n    1,\n    {\n      \"b\" : null\n    }\n  ]\n}"
        );
    }
}
