//! Webhook signature headers and the key name in a delivery's body: any headers, clock and body
//! are read or refused without panicking.
#![no_main]

use std::collections::HashMap;

use keygate::domain::agentex::webhook::WebhookSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, String)>, i64, &[u8])| {
    let (headers, now, body) = input;
    let headers: HashMap<String, String> = headers.into_iter().collect();
    for source in [WebhookSource::Github, WebhookSource::Slack] {
        if let Ok(signature) = source.signature(&headers, now) {
            let _ = signature.is_made_with(b"a signing secret", body);
        }
        let _ = source.key_name(body);
    }
});
