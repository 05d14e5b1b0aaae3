//! Pagination cursors: any text is read as each kind of page key or refused without panicking,
//! and a cursor keygate wrote reads back as its key.
#![no_main]

use chrono::{DateTime, Utc};
use keygate::http::pagination::{read_cursor, write_cursor};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|input: (&str, String, u128)| {
    let (cursor, name, id) = input;
    let _ = read_cursor::<String>(cursor);
    let _ = read_cursor::<Uuid>(cursor);
    let _ = read_cursor::<(DateTime<Utc>, Uuid)>(cursor);
    let id = Uuid::from_u128(id);
    assert_eq!(read_cursor::<Uuid>(&write_cursor(&id)).ok(), Some(id));
    if !name.contains('\0') {
        assert_eq!(read_cursor::<String>(&write_cursor(&name)).ok(), Some(name));
    }
});
