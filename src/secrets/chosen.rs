//! Secrets chosen by people instead of minted: the bootstrap token, an Agentex key, a Slack
//! app's signing secret. One judge for all of them, so they meet one rule.
//!
//! Length and character classes say little about a chosen value:
//! `password1234password1234password` is long and mixes letters and digits, yet it is guessed
//! at once. Strength is judged by zxcvbn's estimate of the guesses an attacker needs, which
//! knows dictionaries, repeats, sequences and keyboard walks.

use super::SecretKind;

/// Fewest guesses zxcvbn must estimate for a chosen secret, as a power of ten: 10^19, about
/// 2^63. Random values reach it (zxcvbn counts at most 2^64 guesses, which random hex, base64
/// and the like of 32 characters and more reach); repeated words, keyboard walks and
/// dictionary words with digits fall far short.
const MIN_GUESSES_LOG10: f64 = 19.0;

/// Characters the estimate looks at. Its cost grows steeply with length, and a secret is at
/// least as hard to guess as its start, so a longer one is judged by its first 64.
const JUDGED_CHARS: usize = 64;

/// The rule a guessable secret breaks, phrased to follow the secret's name.
pub const GUESSABLE: &str = "must be hard to guess: at least 10^19 guesses by the zxcvbn \
    estimate, which random values such as `openssl rand -hex 32` reach and repeated words, \
    keyboard walks and dictionary words with digits do not";

/// Judges a secret a person chose, naming the rule it breaks (phrased to follow the secret's
/// name, never repeating the value): at least 32 characters, no whitespace, no prefix of a
/// secret keygate mints (verification would take it for a minted one), and hard to guess
/// ([`GUESSABLE`]).
pub fn check(value: &str) -> Result<(), &'static str> {
    if value.chars().count() < 32 {
        return Err("must be at least 32 characters long");
    }
    if value.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace");
    }
    if SecretKind::ALL
        .iter()
        .any(|kind| value.starts_with(kind.prefix()))
    {
        return Err("must not start with the prefix of a secret keygate mints");
    }
    let judged = match value.char_indices().nth(JUDGED_CHARS) {
        Some((end, _)) => &value[..end],
        None => value,
    };
    if zxcvbn::zxcvbn(judged, &[]).guesses_log10() < MIN_GUESSES_LOG10 {
        return Err(GUESSABLE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_pass_and_human_patterns_do_not() {
        for strong in [
            "8f742231b10e8888abcd99edabcd85a5", // a Slack signing secret
            "757107ea0eb2509fc211221cce984b8a37570b6d", // 40 hex digits, GitHub's suggestion
            // `openssl rand -hex 32`
            "84fdb2e99985bbd18cbcfdfe546eba8646edb3203f44709477ec376209440e00",
            "pmOfzAEosx17A2UpqQAnbBdijQfNPP+QVaLi0t+Jhgw=", // `openssl rand -base64 32`
            "Zm9vYmFyYmF6cXV4LWhlbGxvLXdvcmxkLTEyMzQ1Njc4OTA", // base64url
            "YEM5rkIw3sPSMEgsKEM/zzxnF6HO7CK2",             // 24 random bytes in base64
            "change-me-to-something-long-and-random",       // README's example token
            "ünïcödé-Qm4-Zt81_xLp09AvRw-0c9f3a1d",          // not only ASCII
            // Judged by its random start: what follows cannot make it easier to guess.
            &format!(
                "{}{}",
                "84fdb2e99985bbd18cbcfdfe546eba8646edb3203f44709477ec376209440e00",
                "a".repeat(400)
            ),
        ] {
            assert_eq!(check(strong), Ok(()), "{strong}");
        }
        for weak in [
            "password1234password1234password", // a repeated word
            "P@ssw0rdP@ssw0rdP@ssw0rdP@ssw0rd", // a repeated word in l33t
            "changemechangemechangemechangeme",
            "admin123admin123admin123admin123",
            "qwertyuiopasdfghjklzxcvbnm1234567890", // keyboard walks
            "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9",
            "qazwsxedcrfvtgbyhnujmikolp123456",
            "Password123456789012345678901234", // dictionary words with digits
            "monkeydragonbaseballfootball2024",
            "mysecretpasswordforkeygate123456",
            "0123456789abcdef0123456789abcdef", // sequences
            "abcdefghijklmnopqrstuvwxyz012345",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &"a1".repeat(300),
        ] {
            assert_eq!(check(weak), Err(GUESSABLE), "{weak}");
        }
    }

    #[test]
    fn the_other_rules_name_what_is_wrong() {
        let strong = "8f742231b10e8888abcd99edabcd85a5";
        for (value, rule) in [
            (String::new(), "at least 32 characters"),
            (
                "Qm4-Zt81_xLp09AvRw-0c9f3a1".into(),
                "at least 32 characters",
            ),
            ("é".repeat(31), "at least 32 characters"),
            (format!("{strong} {strong}"), "whitespace"),
            (format!("{strong}\n"), "whitespace"),
            (format!("\t{strong}"), "whitespace"),
        ] {
            let rule_broken = check(&value).unwrap_err();
            assert!(rule_broken.contains(rule), "{value:?}: {rule_broken}");
        }
        for kind in SecretKind::ALL {
            let value = format!("{}{strong}", kind.prefix());
            assert_eq!(
                check(&value),
                Err("must not start with the prefix of a secret keygate mints"),
                "{value}"
            );
        }
    }
}
