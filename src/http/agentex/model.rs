//! FastAPI's request validation, for the Agentex routes. A body is checked against the model
//! the route documents (its OpenAPI schema) the way pydantic v2 checks it: every declared
//! field in declaration order, then the fields the model does not have in the order they were
//! sent, with pydantic's lax reading of integers. So a client learns every refused field at
//! once, in FastAPI's words, as it would from Agentex. Only a body that passes is read as the
//! handler's type, and the handler's own rules come after, as a FastAPI handler's do.
//!
//! What a refusal repeats of the input: `input` only where it holds neither text nor a number
//! (`null`, booleans, and lists or objects of those without keys), since anything else could
//! be a secret pasted into the wrong field; and an unknown field's name only where it reads as
//! a field name, otherwise the location stops at the object holding it.

use std::borrow::Cow;

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{Error, FieldError, Location, Segment, Violation, bound};
use crate::http::extract::{parse_value, read_body, read_json, refuse_nul};

/// A JSON body validated as FastAPI validates the route's model, then read as `T`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + ToSchema> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let bytes = read_body(request, state).await?;
        let model = Model::of::<T>();
        // FastAPI reads an empty body as no body at all: `null` to a model that takes it.
        let mut value = if bytes.is_empty() {
            if !model.admits_null(&model.schema) {
                let missing = "missing required body";
                let body = refusal(Vec::new(), Violation::Missing, missing, Some(Value::Null));
                return Err(Error::Invalid(vec![body]));
            }
            Value::Null
        } else {
            read_json(&bytes)?
        };
        refuse_nul(&value)?;
        let mut refused = Vec::new();
        model.check(&model.schema, &mut value, &mut Vec::new(), &mut refused);
        if !refused.is_empty() {
            return Err(Error::Invalid(refused));
        }
        parse_value(value).map(Json)
    }
}

/// A request model's OpenAPI schema and the schemas it refers to, as JSON.
struct Model {
    schema: Value,
    components: Map<String, Value>,
}

impl Model {
    fn of<T: ToSchema>() -> Model {
        let as_json = |schema| serde_json::to_value(schema).unwrap_or_default();
        let mut components = Vec::new();
        T::schemas(&mut components);
        Model {
            schema: as_json(T::schema()),
            components: components
                .into_iter()
                .map(|(name, schema)| (name, as_json(schema)))
                .collect(),
        }
    }

    /// The schema itself, or the component it refers to.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
            .and_then(|name| self.components.get(name))
            .unwrap_or(schema)
    }

    /// Whether `null` is a value of `schema` (`Optional[...]` in the model).
    fn admits_null(&self, schema: &Value) -> bool {
        let schema = self.resolve(schema);
        let types = schema.get("type");
        types == Some(&Value::from("null"))
            || types
                .and_then(Value::as_array)
                .is_some_and(|types| types.contains(&Value::from("null")))
            || branches(schema)
                .iter()
                .any(|branch| self.admits_null(branch))
    }

    /// Checks `value` against `schema` at `path`, adding what is refused to `refused`, and
    /// writes integers as pydantic reads them (`"5"` and `5.0` are 5).
    fn check(
        &self,
        schema: &Value,
        value: &mut Value,
        path: &mut Vec<Segment>,
        refused: &mut Vec<FieldError>,
    ) {
        let schema = self.resolve(schema);
        if value.is_null() && self.admits_null(schema) {
            return;
        }
        // `Optional[X]`: null is taken above, anything else is checked as X.
        if let Some(branch) = branches(schema)
            .iter()
            .find(|branch| !self.admits_null(branch))
        {
            return self.check(branch, value, path, refused);
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.contains(value) {
                let listed: Vec<String> = values.iter().map(|v| format!("`{}`", text(v))).collect();
                let message = format!("unknown variant `…`, expected one of {}", listed.join(", "));
                refused.push(refusal(
                    path.clone(),
                    Violation::Rule,
                    &message,
                    echo(value),
                ));
            }
            return;
        }
        let kind = schema
            .get("type")
            .and_then(|types| match types {
                Value::Array(types) => types.iter().find(|t| *t != "null"),
                single => Some(single),
            })
            .and_then(Value::as_str);
        match kind {
            Some("string") if !value.is_string() => {
                refused.push(mistyped(path, "expected a string", value))
            }
            Some("integer") => match lax_integer(value) {
                Ok(number) => match bounds(schema, number) {
                    Some(broken) => {
                        refused.push(refusal(path.clone(), Violation::Rule, &broken, echo(value)))
                    }
                    None => *value = Value::from(number),
                },
                Err((text, message)) => {
                    let wrong = Violation::WrongType { text };
                    refused.push(refusal(path.clone(), wrong, message, echo(value)));
                }
            },
            Some("object") if schema.get("properties").is_some() => {
                self.check_model(schema, value, path, refused)
            }
            Some("object") => self.check_map(schema, value, path, refused),
            // Other types (none of the Agentex models has one) are left to the reader.
            _ => {}
        }
    }

    /// A model: its declared fields in order, then the fields it does not have.
    fn check_model(
        &self,
        schema: &Value,
        value: &mut Value,
        path: &mut Vec<Segment>,
        refused: &mut Vec<FieldError>,
    ) {
        let whole = echo(value);
        let Some(object) = value.as_object_mut() else {
            refused.push(mistyped(path, "expected struct fields in an object", value));
            return;
        };
        let properties = schema["properties"].as_object().into_iter().flatten();
        let required = |name: &str| {
            schema
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|required| required.iter().any(|field| field == name))
        };
        for (name, field) in properties {
            path.push(Segment::Key(Cow::Owned(name.clone())));
            match object.get_mut(name) {
                Some(value) => self.check(field, value, path, refused),
                None if required(name) => refused.push(refusal(
                    path.clone(),
                    Violation::Missing,
                    "missing required field",
                    whole.clone(),
                )),
                None => {}
            }
            path.pop();
        }
        if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
            let declared = schema["properties"].as_object();
            for (name, value) in object.iter() {
                if declared.is_some_and(|declared| declared.contains_key(name)) {
                    continue;
                }
                let mut at = path.clone();
                if names_a_field(name) {
                    at.push(Segment::Key(Cow::Owned(name.clone())));
                }
                refused.push(refusal(
                    at,
                    Violation::Unknown,
                    "unknown field `…`",
                    echo(value),
                ));
            }
        }
    }

    /// A map (`Dict[str, X]`): every value checked as X.
    fn check_map(
        &self,
        schema: &Value,
        value: &mut Value,
        path: &mut Vec<Segment>,
        refused: &mut Vec<FieldError>,
    ) {
        let Some(object) = value.as_object_mut() else {
            refused.push(mistyped(path, "expected a map", value));
            return;
        };
        let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) else {
            return;
        };
        for (key, value) in object.iter_mut() {
            // A key the client made up is repeated only where it reads as a name.
            let named = names_a_field(key);
            if named {
                path.push(Segment::Key(Cow::Owned(key.clone())));
            }
            self.check(values, value, path, refused);
            if named {
                path.pop();
            }
        }
    }
}

/// The alternatives of a `oneOf` or `anyOf` schema.
fn branches(schema: &Value) -> &[Value] {
    schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// An enum value as text, for the list of values a field takes.
fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// An integer as pydantic reads one in lax mode: a number without a fraction, a boolean, or
/// text that spells one. Otherwise whether text came, and why it is not an integer.
fn lax_integer(value: &Value) -> Result<i64, (bool, &'static str)> {
    const NOT_AN_INTEGER: &str = "expected an integer";
    let from_float = |float: f64| {
        if float.fract() != 0.0 {
            Err(bound::FRACTION)
        } else if float.abs() < i64::MAX as f64 {
            Ok(float as i64)
        } else {
            Err(NOT_AN_INTEGER)
        }
    };
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Ok(integer),
            None => from_float(number.as_f64().unwrap_or(f64::NAN)).map_err(|m| (false, m)),
        },
        Value::Bool(flag) => Ok(i64::from(*flag)),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .or_else(|_| match text.parse::<f64>() {
                    Ok(float) if float.is_finite() => from_float(float),
                    _ => Err(NOT_AN_INTEGER),
                })
                .map_err(|m| (true, m))
        }
        _ => Err((false, NOT_AN_INTEGER)),
    }
}

/// The bound of `schema` that `number` breaks, in the words every dialect reads.
fn bounds(schema: &Value, number: i64) -> Option<String> {
    let limit = |name: &str| schema.get(name).and_then(Value::as_i64);
    if let Some(minimum) = limit("minimum").filter(|minimum| number < *minimum) {
        return Some(bound::at_least(minimum));
    }
    limit("maximum")
        .filter(|maximum| number > *maximum)
        .map(bound::at_most)
}

fn refusal(
    path: Vec<Segment>,
    violation: Violation,
    message: &str,
    input: Option<Value>,
) -> FieldError {
    FieldError {
        location: Location::Body,
        path,
        violation,
        message: message.to_owned(),
        input,
    }
}

/// `value` at `path` is not of the type expected (in serde's words, which the dialects read).
fn mistyped(path: &[Segment], expected: &str, value: &Value) -> FieldError {
    let wrong = Violation::WrongType { text: false };
    refusal(path.to_vec(), wrong, expected, echo(value))
}

/// `value` when it may be repeated in an error: it holds no text (no string, no key) and no
/// number, either of which could be a secret.
fn echo(value: &Value) -> Option<Value> {
    fn harmless(value: &Value) -> bool {
        match value {
            Value::Null | Value::Bool(_) => true,
            Value::Array(items) => items.iter().all(harmless),
            Value::Object(fields) => fields.is_empty(),
            Value::String(_) | Value::Number(_) => false,
        }
    }
    harmless(value).then(|| value.clone())
}

/// Whether a name the client made up reads as a field name — a letter, then letters, `_` or
/// `-`, then at most three digits, 40 characters in all — rather than a value such as a
/// pasted secret, which is never repeated.
fn names_a_field(name: &str) -> bool {
    let letters = name.trim_end_matches(|c: char| c.is_ascii_digit());
    name.len() <= 40
        && name.len() - letters.len() <= 3
        && letters.starts_with(|c: char| c.is_ascii_alphabetic())
        && letters
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_that_read_as_field_names_are_repeated() {
        for name in ["colour", "agent_name", "x-hub-signature-256", "apiKey2"] {
            assert!(names_a_field(name), "{name}");
        }
        for name in [
            "agx_key_3kT9qL2mZx8vN4bR7wY1",
            "a3f9c2e17b4d",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "",
            "_private",
            "two words",
        ] {
            assert!(!names_a_field(name), "{name}");
        }
    }

    #[test]
    fn input_is_repeated_only_where_it_holds_neither_text_nor_numbers() {
        for value in [
            Value::Null,
            Value::from(true),
            serde_json::json!([null, [false]]),
            serde_json::json!({}),
        ] {
            assert_eq!(echo(&value), Some(value.clone()));
        }
        for value in [
            Value::from("kgk_x"),
            Value::from(123456),
            serde_json::json!([true, 1]),
            serde_json::json!({"a": null}),
        ] {
            assert_eq!(echo(&value), None, "{value}");
        }
    }

    #[test]
    fn integers_are_read_as_pydantic_reads_them() {
        assert_eq!(lax_integer(&Value::from(5)), Ok(5));
        assert_eq!(lax_integer(&serde_json::json!(5.0)), Ok(5));
        assert_eq!(lax_integer(&Value::from(" 7 ")), Ok(7));
        assert_eq!(lax_integer(&Value::from("7.0")), Ok(7));
        assert_eq!(lax_integer(&Value::from(true)), Ok(1));
        assert!(
            matches!(lax_integer(&serde_json::json!(5.5)), Err((false, m)) if m == bound::FRACTION)
        );
        assert!(matches!(lax_integer(&Value::from("many")), Err((true, _))));
        assert!(matches!(
            lax_integer(&serde_json::json!([1])),
            Err((false, _))
        ));
    }
}
