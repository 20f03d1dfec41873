//! Free text and names that people type and other people read: token display
//! names, user names, break-glass reasons, policy sources.
//!
//! Such text ends up in listings, `coffer history`, audit records and logs,
//! where it sits next to text the system wrote. Two kinds of character would
//! let it pass for something else there, and are refused (never stripped,
//! never quoted back in the error):
//!
//! * line breaks of any kind (C0 and C1 controls, including U+0085, and the
//!   Unicode line and paragraph separators U+2028 and U+2029), which forge
//!   extra lines in a log or a table;
//! * bidirectional controls (U+061C, U+200E, U+200F, U+202A to U+202E,
//!   U+2066 to U+2069), which reorder what is displayed ("Trojan Source").
//!
//! Text shaped like a coffer token or invitation code (`cft_...`, `cfi_...`)
//! is refused too, so that a credential pasted into the wrong field is never
//! stored, logged or shown back.
//!
//! Names are held to more: no invisible formatting characters at all (zero
//! widths, word joiners, the byte-order mark, soft hyphens, tag characters),
//! and none of the names the system itself writes as an actor ([`RESERVED`])
//! in any spelling that looks the same (letter case, surrounding or inner
//! whitespace and punctuation, full-width forms, common Cyrillic and Greek
//! look-alikes, `0` for `o`).
//!
//! Free text is refused rather than escaped: a reason or a name has no use for
//! these characters, and escaping would store one thing and show another,
//! each reader having to know to unescape it.

use unicode_normalization::UnicodeNormalization;

use crate::error::{CoreError, InvalidInput, Result};

/// Names the system writes as the actor of what it does itself: the initial
/// root token, the rotation scheduler, system alerts. No token, user or
/// other identity may take one, in any spelling that looks the same.
pub const RESERVED: &[&str] = &[
    "root",
    "system",
    "coffer",
    "coffer-scheduler",
    "scheduler",
    "anonymous",
];

/// Whether `c` breaks a line or reorders displayed text.
pub fn is_line_or_direction_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Whether `c` is an invisible formatting character (or a line or
/// direction control): refused in names.
pub fn is_invisible(c: char) -> bool {
    is_line_or_direction_control(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Checks free text (a reason, a description): trimmed, not empty, at most
/// `max` characters, no line breaks or direction controls. `what` names the
/// field in the error ("a reason"); the input is never quoted.
pub fn check_free_text(what: &str, s: &str, max: usize) -> Result<String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(CoreError::Invalid(InvalidInput::Empty {
            what: what.to_string(),
        }));
    }
    if s.chars().count() > max {
        return Err(CoreError::Invalid(InvalidInput::TooLong {
            what: what.to_string(),
            max,
        }));
    }
    if let Some(c) = s.chars().find(|c| is_line_or_direction_control(*c)) {
        return Err(CoreError::Invalid(InvalidInput::Character {
            what: what.to_string(),
            described: describe(c),
        }));
    }
    refuse_credential(what, s)?;
    Ok(s.to_string())
}

/// Refuses text shaped like a coffer token or invitation code (`cft_...`,
/// `cfi_...`, any letter case): such text would be stored and shown to
/// others as it is. The text is never quoted in the error.
pub fn refuse_credential(what: &str, s: &str) -> Result<()> {
    if coffer_policy::contains_credential(s) {
        return Err(CoreError::Invalid(InvalidInput::CredentialShaped {
            what: what.to_string(),
        }));
    }
    Ok(())
}

/// Checks a name people read as an identity (a token's display name): free
/// text rules, no invisible characters, and not a reserved actor name.
pub fn check_name(what: &str, s: &str, max: usize) -> Result<String> {
    let s = check_free_text(what, s, max)?;
    if let Some(c) = s.chars().find(|c| is_invisible(*c)) {
        return Err(CoreError::Invalid(InvalidInput::Character {
            what: what.to_string(),
            described: describe(c),
        }));
    }
    refuse_reserved(what, &s)?;
    refuse_actor_suffix(what, &s)?;
    Ok(s)
}

/// Refuses a name holding what coffer appends to a name when it shows who
/// acted: `(service acc_...)`, `(human ...)`, `(system)`, or a token
/// accessor. `coffer history` shows `NAME (KIND ACCESSOR)`; a name that
/// carried its own would read as another identity.
pub(crate) fn refuse_actor_suffix(what: &str, name: &str) -> Result<()> {
    let folded: String = name.nfkc().collect::<String>().to_lowercase();
    let kind_in_parens = folded.match_indices('(').any(|(i, _)| {
        let rest = folded[i + 1..].trim_start();
        ["service", "human", "system"]
            .iter()
            .any(|k| rest.starts_with(k))
    });
    let accessor = folded.match_indices("acc_").any(|(i, _)| {
        folded[i + 4..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
    });
    if kind_in_parens || accessor {
        return Err(CoreError::Invalid(InvalidInput::ActorSuffix {
            what: what.to_string(),
        }));
    }
    Ok(())
}

/// Refuses `name` when it looks like one of the [`RESERVED`] names.
pub fn refuse_reserved(what: &str, name: &str) -> Result<()> {
    let skeleton = skeleton(name);
    if let Some(r) = RESERVED.iter().find(|r| skeleton == self::skeleton(r)) {
        return Err(CoreError::Invalid(InvalidInput::Reserved {
            what: what.to_string(),
            reserved: r,
        }));
    }
    Ok(())
}

/// Whether `name` looks like `other` (the same skeleton) without being it.
pub fn looks_like(name: &str, other: &str) -> bool {
    name != other && skeleton(name) == skeleton(other)
}

/// What a name looks like: compatibility forms folded and accents taken
/// apart (NFKD), lower case, accents and invisible characters dropped, only
/// letters and digits kept, common look-alikes (Cyrillic, Greek, Armenian,
/// Cherokee, IPA, small capitals, letters with strokes) mapped to the ASCII
/// letter they imitate.
fn skeleton(s: &str) -> String {
    let folded: String = s.nfkd().collect::<String>().to_lowercase();
    folded
        .nfkd()
        .filter(|c| {
            !unicode_normalization::char::is_combining_mark(*c)
                && !is_invisible(*c)
                && c.is_alphanumeric()
        })
        .map(confusable)
        .collect()
}

fn confusable(c: char) -> char {
    // Cherokee capitals lower-case to U+AB70.. (and U+13F8..): read them
    // as the capital they are.
    let c = match c as u32 {
        0xAB70..=0xABBF => char::from_u32(c as u32 - 0xAB70 + 0x13A0).unwrap_or(c),
        0x13F8..=0x13FD => char::from_u32(c as u32 - 8).unwrap_or(c),
        _ => c,
    };
    match c {
        '0' | 'о' | 'ο' | 'σ' | 'օ' | 'ᴏ' | 'ø' | 'ɵ' | 'Ꮎ' | 'Ꮻ' | 'Ꭴ' => 'o',
        '1' | 'ӏ' | 'ι' | 'ǀ' | 'ł' | 'Ꮮ' | 'ʟ' => 'l',
        'а' | 'α' | 'Ꭺ' | 'ᴀ' => 'a',
        'Ᏼ' | 'ƀ' | 'ʙ' | 'ь' => 'b',
        'с' | 'ϲ' | 'ᴄ' | 'Ꮯ' => 'c',
        'е' | 'ε' | 'ҽ' | 'Ꭼ' | 'ᴇ' => 'e',
        'һ' | 'ћ' | 'հ' | 'Ꮋ' | 'ħ' | 'ʜ' => 'h',
        'і' | 'ı' | 'Ꭵ' | 'ɨ' | 'ɪ' => 'i',
        'ј' | 'ϳ' | 'յ' | 'Ꭻ' | 'ȷ' => 'j',
        'к' | 'κ' | 'Ꮶ' | 'ᴋ' => 'k',
        'м' | 'ᴍ' | 'Ꮇ' => 'm',
        'п' | 'η' | 'ո' | 'ռ' | 'ɴ' => 'n',
        'р' | 'ρ' | 'Ꮲ' | 'ք' | 'ᴘ' => 'p',
        'զ' | 'գ' => 'q',
        'г' | 'ᴦ' | 'Ꭱ' | 'Ꮢ' | 'ʀ' | 'ɾ' | 'ɼ' | 'ɽ' | 'ɿ' => 'r',
        'ѕ' | 'ꜱ' | 'Ꮪ' => 's',
        'т' | 'τ' | 'ᴛ' | 'Ꭲ' | 'ŧ' | 'ƫ' | 'ƭ' => 't',
        'υ' | 'ս' | 'ᴜ' | 'ʉ' => 'u',
        'у' | 'γ' | 'ү' | 'Ꭹ' | 'ʏ' => 'y',
        'х' | 'χ' => 'x',
        'ԁ' | 'Ꭰ' | 'đ' | 'ᴅ' => 'd',
        'ғ' | 'ſ' => 'f',
        'ց' | 'Ꮐ' | 'ɢ' => 'g',
        'Ꮃ' | 'ᴡ' => 'w',
        'Ꮩ' | 'ᴠ' => 'v',
        'Ꮓ' | 'ᴢ' => 'z',
        other => other,
    }
}

/// Names a refused character without showing it.
fn describe(c: char) -> String {
    let kind = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
        "control characters or line breaks"
    } else if is_line_or_direction_control(c) {
        "text direction controls"
    } else {
        "invisible formatting characters"
    };
    format!("{kind} (found U+{:04X})", c as u32)
}

/// Quotes user input in an error only when it is short and printable.
pub(crate) fn printable(s: &str) -> String {
    if quotable(s) {
        format!("{s:?}")
    } else {
        "the value given".into()
    }
}

/// Whether user input is short and printable enough for an error to quote
/// it (see [`printable`]).
pub(crate) fn quotable(s: &str) -> bool {
    s.len() <= 64
        && s.chars().all(|c| c.is_ascii_graphic())
        && !coffer_policy::contains_credential(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_refused_in_display_names_and_reasons() {
        for c in [
            '\u{0}', '\n', '\r', '\t', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}', '\u{2028}',
            '\u{2029}', '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}',
            '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            let text = format!("deploy{c}hunter2 bot");
            for (what, result) in [
                ("reason", check_free_text("a reason", &text, 500)),
                ("name", check_name("a display name", &text, 128)),
            ] {
                let e = result.expect_err(&format!("{what} with U+{:04X}", c as u32));
                let m = e.to_string();
                assert!(
                    m.contains(&format!("U+{:04X}", c as u32)) && !m.contains("hunter2"),
                    "{m}"
                );
                assert!(!m.contains(c), "{m}");
            }
        }
        // Names refuse invisible characters too; free text keeps joiners
        // (emoji sequences and some scripts need them).
        for c in [
            '\u{200B}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{AD}',
            '\u{E0041}',
        ] {
            assert!(check_name("a name", &format!("ci{c}bot"), 128).is_err());
        }
        assert!(
            check_free_text("a reason", "INC-7 \u{1F469}\u{200D}\u{1F4BB} on call", 500).is_ok()
        );
        assert_eq!(
            check_free_text("a reason", "  INC-7 outage  ", 500).unwrap(),
            "INC-7 outage"
        );
        assert_eq!(
            check_name("a name", "Déploiement CI", 128).unwrap(),
            "Déploiement CI"
        );
    }

    #[test]
    fn token_shaped_display_names_and_reasons_are_refused_without_echo() {
        let token = format!("cft_{}", "Ab9".repeat(16));
        let invite = format!("cfi_{}", "Zq3".repeat(16));
        for text in [
            token.clone(),
            format!("ci bot {token}"),
            format!("INC-7 pasted {invite}"),
            token.to_ascii_uppercase(),
            token.to_ascii_lowercase(),
        ] {
            for result in [
                check_free_text("a reason", &text, 500),
                check_name("a display name", &text, 500),
            ] {
                let m = result.expect_err(&text).to_string();
                assert!(m.contains("looks like a coffer token"), "{m}");
                assert!(
                    !m.to_ascii_lowercase().contains("ab9ab9") && !m.contains("Zq3Zq3"),
                    "{m}"
                );
            }
        }
        for fine in ["cft bot", "cf_t", "the cft_ prefix", "cfi"] {
            assert!(check_name("a display name", fine, 128).is_ok(), "{fine}");
        }
    }

    #[test]
    fn reserved_names_with_accents_fillers_and_more_lookalike_scripts() {
        for name in [
            "r\u{0307}oot", // composes to U+1E59 under NFC
            "r\u{00F6}\u{00F6}t",
            "r\u{1EDD}ot",
            "r\u{00F8}\u{00F8}t",
            "ro\u{3164}ot", // Hangul filler, a letter to Unicode
            "\u{0280}oot",
            "\u{027E}oot",
            "roo\u{01AB}",
            "\u{13D2}\u{13BE}\u{13BE}\u{13A2}", // Cherokee
            "\u{13DA}\u{13A9}\u{13DA}\u{13A2}\u{13AC}\u{13B7}",
            "\u{1D42B}\u{1D428}\u{1D428}\u{1D42D}", // mathematical bold
            "\u{24E1}\u{24DE}\u{24DE}\u{24E3}",     // circled
            "\u{1F141}\u{1F13E}\u{1F13E}\u{1F143}", // squared
            "r\u{0585}\u{0585}t",                   // Armenian
            "\u{0455}\u{0443}\u{0455}\u{0442}\u{0435}\u{043C}",
            "sched\u{03C5}ler",
            "\u{0441}offer",
        ] {
            assert!(
                refuse_reserved("a name", name).is_err(),
                "{name:?} must be refused"
            );
        }
        for fine in ["r\u{00F6}sti", "søren", "rootløs", "ħello"] {
            assert!(refuse_reserved("a name", fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn display_name_cannot_carry_a_kind_or_accessor_of_its_own() {
        for name in [
            "alice (human acc_Ab9Ab9Ab9Ab9Ab9Ab9Ab9Ab9)",
            "alice (Human)",
            "deploy ( service",
            "ops (system)",
            "bot acc_x1",
            "alice \u{FF08}human\u{FF09}",
        ] {
            let e = check_name("a display name", name, 128).expect_err(name);
            assert!(e.to_string().contains("kind in parentheses"), "{e}");
        }
        for fine in [
            "CI (prod)",
            "deploy bot",
            "accounting",
            "acc_",
            "human resources bot",
        ] {
            assert!(check_name("a display name", fine, 128).is_ok(), "{fine}");
        }
    }

    #[test]
    fn reserved_actor_names_in_every_spelling() {
        for name in [
            "root",
            "Root",
            "ROOT",
            "root ",
            " root",
            "r o o t",
            "ｒｏｏｔ",
            "r00t",
            "rооt", // Cyrillic o
            "ro\u{1D0F}t",
            "root.",
            "_root_",
            "system",
            "SYSTEM",
            "ѕуѕтем",
            "coffer-scheduler",
            "Coffer-Scheduler",
            "coffer_scheduler",
            "coffer scheduler",
            "cоffer-scheduler", // Cyrillic o
            "ｃｏｆｆｅｒ－ｓｃｈｅｄｕｌｅｒ",
            "c0ffer.scheduler",
            "scheduler",
            "coffer",
            "anonymous",
        ] {
            let e = refuse_reserved("a display name", name)
                .expect_err(&format!("{name:?} must be refused"));
            assert!(e.to_string().contains("coffer writes that name"), "{e}");
        }
        for fine in [
            "rootkit",
            "root-admin",
            "alice",
            "ops-bot",
            "systems",
            "deploy",
        ] {
            assert!(refuse_reserved("a name", fine).is_ok(), "{fine}");
        }
    }
}
