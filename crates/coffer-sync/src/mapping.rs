//! Names and values between coffer and a cloud store: pure functions.
//!
//! A name is mapped only when it maps exactly; anything else is refused
//! with the reason, never altered. A value is compared by a SHA-256 digest
//! computed in memory (never stored, printed or sent) of its canonical
//! form, in constant time.

use std::collections::BTreeMap;

use coffer_api::WireValue;
use coffer_crypto::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cloud store a name is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// AWS Secrets Manager.
    SecretsManager,
    /// AWS Systems Manager Parameter Store.
    ParameterStore,
}

/// Longest Secrets Manager name.
const SM_MAX_NAME: usize = 512;
/// Longest Parameter Store name (a fully qualified one).
const SSM_MAX_NAME: usize = 1011;
/// Deepest Parameter Store hierarchy.
const SSM_MAX_DEPTH: usize = 15;

/// The part of `name` below `prefix`, when `name` starts with it (case
/// sensitive) and something is left.
pub fn below<'a>(prefix: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix(prefix).filter(|rest| !rest.is_empty())
}

/// A cloud name for the coffer secret `rel` (its path below the coffer
/// folder) under `prefix`, or why there is none. `prefix` is used as
/// given (a Secrets Manager prefix need not end in `/`).
pub fn cloud_name(service: Service, prefix: &str, rel: &str) -> Result<String, String> {
    let name = format!("{prefix}{rel}");
    match service {
        Service::SecretsManager => {
            if let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
            {
                return Err(format!(
                    "Secrets Manager names hold only letters, digits and / _ + = . @ - (not {})",
                    shown_char(c)
                ));
            }
            if name.len() > SM_MAX_NAME {
                return Err(format!(
                    "Secrets Manager names are at most {SM_MAX_NAME} characters"
                ));
            }
        }
        Service::ParameterStore => {
            if let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "/_.-".contains(*c)))
            {
                return Err(format!(
                    "Parameter Store names hold only letters, digits and / _ . - (not {})",
                    shown_char(c)
                ));
            }
            if name.len() > SSM_MAX_NAME {
                return Err(format!(
                    "Parameter Store names are at most {SSM_MAX_NAME} characters"
                ));
            }
            if name.contains('/') && !name.starts_with('/') {
                return Err("a Parameter Store name with a / must start with /".into());
            }
            if name.contains("//") {
                return Err("Parameter Store names have no empty level (//)".into());
            }
            if name.matches('/').count() > SSM_MAX_DEPTH {
                return Err(format!(
                    "Parameter Store names are at most {SSM_MAX_DEPTH} levels deep"
                ));
            }
            let first = name.trim_start_matches('/').to_ascii_lowercase();
            if first.starts_with("aws") || first.starts_with("ssm") {
                return Err("Parameter Store names cannot start with aws or ssm".into());
            }
        }
    }
    Ok(name)
}

/// A character named in a reason: printable ones quoted, others by code
/// point (a reason never carries a terminal control).
fn shown_char(c: char) -> String {
    if c.is_control() || !c.is_ascii_graphic() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("{c:?}")
    }
}

/// A cloud secret string as a coffer value: a JSON object whose values are
/// all strings becomes fields (what coffer's JSON-object values are); any
/// other text, JSON or not, stays text.
pub fn to_wire(text: &SecretString) -> WireValue {
    let raw = text.expose_secret();
    if raw.trim_start().starts_with('{')
        && let Ok(fields) = serde_json::from_str::<BTreeMap<String, String>>(raw)
    {
        return WireValue::Fields(fields);
    }
    WireValue::Text(raw.to_string())
}

/// A coffer value as a cloud secret string: text as it is, fields as a
/// compact JSON object (keys in order).
pub fn from_wire(value: &WireValue) -> SecretString {
    match value {
        WireValue::Text(t) => SecretString::new(t.clone()),
        WireValue::Fields(f) => {
            SecretString::new(serde_json::to_string(f).expect("a map of strings serializes"))
        }
    }
}

/// The canonical form of a cloud secret string: what it reads back as
/// after a round trip through coffer (so `{"a": "b"}` and `{"a":"b"}` are
/// the same value).
pub fn canonical(text: &SecretString) -> SecretString {
    from_wire(&to_wire(text))
}

/// A value's digest, for comparison only. Kept in memory, never shown.
pub struct ValueDigest([u8; 32]);

impl ValueDigest {
    /// The digest of `value`'s canonical form.
    pub fn of(value: &SecretString) -> ValueDigest {
        let canonical = canonical(value);
        ValueDigest(Sha256::digest(canonical.expose_secret().as_bytes()).into())
    }

    /// The digest of a coffer value.
    pub fn of_wire(value: &WireValue) -> ValueDigest {
        ValueDigest::of(&from_wire(value))
    }

    /// Whether two digests are equal, in constant time.
    pub fn same(&self, other: &ValueDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Drop for ValueDigest {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_exactly_or_say_why_not() {
        use Service::*;
        let cases: &[(Service, &str, &str, Result<&str, &str>)] = &[
            (SecretsManager, "/app/prod/", "db", Ok("/app/prod/db")),
            (SecretsManager, "app-", "db.url", Ok("app-db.url")),
            (SecretsManager, "/app/", "a:b", Err("not ':'")),
            (SecretsManager, "/app/", "a~b", Err("not '~'")),
            (SecretsManager, "/app/", "a,b", Err("not ','")),
            (SecretsManager, "/app/", "caf\u{e9}", Err("U+00E9")),
            (ParameterStore, "/app/prod/", "db", Ok("/app/prod/db")),
            (ParameterStore, "/app/", "a@b", Err("not '@'")),
            (ParameterStore, "/app/", "a=b", Err("not '='")),
            (ParameterStore, "app/", "db", Err("must start with /")),
            (ParameterStore, "/aws/", "db", Err("aws or ssm")),
            (ParameterStore, "/SSM-x/", "db", Err("aws or ssm")),
            (ParameterStore, "/a/", "b//c", Err("empty level")),
            (ParameterStore, "/a/", &"x/".repeat(15), Err("levels deep")),
        ];
        for (service, prefix, rel, want) in cases {
            let got = cloud_name(*service, prefix, rel);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g),
                (Err(w), Err(g)) => assert!(g.contains(w), "{rel}: {g}"),
                _ => panic!("{prefix}{rel}: {got:?}, want {want:?}"),
            }
        }
        assert!(
            cloud_name(SecretsManager, "/", &"a".repeat(SM_MAX_NAME))
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn below_needs_the_exact_prefix_and_something_after_it() {
        assert_eq!(below("/app/", "/app/db"), Some("db"));
        assert_eq!(below("/app/", "/App/db"), None);
        assert_eq!(below("/app/", "/app/"), None);
        assert_eq!(below("/app/", "/apple"), None);
    }

    #[test]
    fn json_objects_of_strings_become_fields_and_nothing_else_does() {
        let cases: &[(&str, bool)] = &[
            (r#"{"user":"u","password":"p"}"#, true),
            (r#" {"a": "b"} "#, true),
            (r#"{"port": 5432}"#, false),
            (r#"{"a": {"b": "c"}}"#, false),
            (r#"["a"]"#, false),
            ("plain text", false),
            ("{not json", false),
        ];
        for (text, fields) in cases {
            let v = to_wire(&SecretString::from(*text));
            assert_eq!(matches!(v, WireValue::Fields(_)), *fields, "{text}");
            if !fields {
                assert!(matches!(&v, WireValue::Text(t) if t == text));
            }
        }
    }

    #[test]
    fn digests_compare_canonical_forms() {
        let a = ValueDigest::of(&SecretString::from(r#"{"a": "b", "c": "d"}"#));
        let b = ValueDigest::of(&SecretString::from(r#"{"c":"d","a":"b"}"#));
        let c = ValueDigest::of(&SecretString::from(r#"{"a":"b"}"#));
        assert!(a.same(&b));
        assert!(!a.same(&c));
        let mut fields = BTreeMap::new();
        fields.insert("a".to_string(), "b".to_string());
        assert!(c.same(&ValueDigest::of_wire(&WireValue::Fields(fields))));
        assert!(
            ValueDigest::of(&SecretString::from("x"))
                .same(&ValueDigest::of_wire(&WireValue::Text("x".into())))
        );
    }
}
