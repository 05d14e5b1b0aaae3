//! Secret parsing and checksums: any text is parsed or refused without panicking, and what is
//! accepted is exactly the text presented.
#![no_main]

use keygate::secrets::PlainSecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(secret) = PlainSecret::parse(text) {
        assert_eq!(secret.expose(), text);
    }
});
