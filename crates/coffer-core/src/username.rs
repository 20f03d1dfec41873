//! User names and their one canonical form.
//!
//! Every spelling of a name that a person would consider the same (letter
//! case, surrounding whitespace, full-width or compatibility forms, composed
//! or decomposed accents) maps to one canonical name, and that canonical name
//! is the account's key everywhere: in storage, in login rate limits, in token
//! ownership. So `Alice`, ` alice `, `ＡＬＩＣＥ` and `alice` are one account,
//! and failed-login limits cannot be dodged by respelling a name.
//!
//! The canonical form is NFKC, then lower case, then NFKC again (lower-casing
//! can produce denormalised text). The result must be 1 to 64 characters of
//! Unicode letters and digits and `. _ - @`; everything else (inner spaces,
//! invisible formatting characters such as U+200B, punctuation, symbols) is
//! refused rather than stripped, so no two different inputs silently collide.

use unicode_normalization::UnicodeNormalization;

/// Longest canonical user name, in characters.
pub const MAX_USER_NAME_CHARS: usize = 64;

pub use crate::error::UserNameError;

/// Returns the canonical form of a user name, or why it is not acceptable.
pub fn canonical_user_name(input: &str) -> Result<String, UserNameError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(UserNameError::Empty);
    }
    if trimmed.len() > 4 * MAX_USER_NAME_CHARS {
        return Err(UserNameError::TooLong {
            max: MAX_USER_NAME_CHARS,
        });
    }
    let folded: String = trimmed.nfkc().collect::<String>().to_lowercase();
    let canonical: String = folded.nfkc().collect();
    if coffer_policy::contains_credential(trimmed) || coffer_policy::contains_credential(&canonical)
    {
        // Lower-cased, a pasted token would still be most of the token.
        return Err(UserNameError::CredentialShaped);
    }
    let count = canonical.chars().count();
    if count > MAX_USER_NAME_CHARS {
        return Err(UserNameError::TooLong {
            max: MAX_USER_NAME_CHARS,
        });
    }
    if let Some(c) = canonical.chars().find(|c| {
        // Hangul fillers are letters to Unicode but show as blanks.
        crate::text::is_invisible(*c)
            || !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    }) {
        return Err(if c.is_whitespace() {
            UserNameError::Space
        } else if c.is_control() {
            UserNameError::Control
        } else {
            UserNameError::Character(c)
        });
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_one_name_are_one_account() {
        for variant in [
            "alice",
            "Alice",
            "ALICE",
            "  alice\t",
            "\u{FF21}\u{FF2C}\u{FF29}\u{FF23}\u{FF25}", // full-width ALICE
            "alice\n",
        ] {
            assert_eq!(
                canonical_user_name(variant).unwrap(),
                "alice",
                "{variant:?}"
            );
        }
        // Composed and decomposed accents are the same name.
        assert_eq!(
            canonical_user_name("Jos\u{E9}").unwrap(),
            canonical_user_name("JOSE\u{301}").unwrap()
        );
        // The Kelvin sign and the ligature fold to plain letters.
        assert_eq!(canonical_user_name("\u{212A}ate").unwrap(), "kate");
        assert_eq!(canonical_user_name("\u{FB01}ona").unwrap(), "fiona");
        assert_eq!(
            canonical_user_name("Ops.Bot-1@corp").unwrap(),
            "ops.bot-1@corp"
        );
    }

    #[test]
    fn invisible_and_odd_characters_are_refused_not_stripped() {
        for bad in [
            "",
            "   ",
            "al ice",
            "ali\u{200B}ce",
            "alice\u{FEFF}",
            "al\u{0}ice",
            "ali/ce",
            "alice!",
            "a\u{202E}b",
            "ro\u{3164}ot",
            "\u{115F}alice",
            "ali\u{FFA0}ce",
        ] {
            assert!(canonical_user_name(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(canonical_user_name(&"a".repeat(64)).is_ok());
        assert!(canonical_user_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn token_shaped_user_names_are_refused_without_echo() {
        let token = format!("cft_{}", "Ab9".repeat(16));
        for name in [
            token.clone(),
            token.to_ascii_uppercase(),
            format!("ops-{}", token.replacen("cft", "cfi", 1)),
            // Full-width letters fold into a token shape.
            "\u{FF43}\u{FF46}\u{FF54}_ab9ab9".to_string(),
        ] {
            let e = canonical_user_name(&name).expect_err(&name);
            assert_eq!(e, UserNameError::CredentialShaped);
            let e = e.to_string();
            assert!(e.contains("look like a coffer token"), "{e}");
            assert!(!e.to_ascii_lowercase().contains("ab9ab9"), "{e}");
        }
        assert!(canonical_user_name("cft-team").is_ok());
    }

    #[test]
    fn errors_do_not_quote_the_input() {
        let e = canonical_user_name("hunter2 secret!").unwrap_err();
        assert_eq!(e, UserNameError::Space);
        let e = e.to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
