//! HTTP Digest `Authorization` parameters: any header value is read or refused without
//! panicking.
#![no_main]

use keygate::http::ops_manager::digest::Answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = Answer::parse(text);
});
