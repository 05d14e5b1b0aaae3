//! Agent DSNs: any text parses or not without panicking, and any name, key and mode survive
//! being built into a DSN and parsed back.
#![no_main]

use keygate::config::parse_grpc_url;
use keygate::secrets::agent_key::{build_dsn, parse_dsn};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str, &str)| {
    let (text, name, key, mode) = input;
    let _ = parse_dsn(text);
    if name.is_empty() || key.is_empty() {
        return;
    }
    for gateway in [
        "grpc://127.0.0.1:8010",
        "grpcs://[2001:db8::1]",
        "grpc://gw.example.com",
    ] {
        let dsn = build_dsn(&parse_grpc_url(gateway).unwrap(), name, key, mode);
        let parsed = parse_dsn(&dsn).expect("a built DSN parses");
        assert_eq!(
            (
                parsed.name.as_str(),
                parsed.key.as_str(),
                parsed.mode.as_deref()
            ),
            (name, key, Some(mode))
        );
    }
});
