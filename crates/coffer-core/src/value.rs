//! Secret values and their plaintext encoding (what gets sealed).
//!
//! A value is either text or an object of named string fields (the shape
//! Vault-style clients write). The encoding is a tag byte followed by the UTF-8
//! text or the JSON object; it lives only inside zeroizing buffers.

use std::collections::BTreeMap;

use coffer_crypto::{SecretBytes, SecretString};
use zeroize::Zeroizing;

use crate::{CoreError, InvalidInput};

const TAG_TEXT: u8 = 1;
const TAG_FIELDS: u8 = 2;

/// Longest field name, in bytes.
pub const MAX_FIELD_NAME: usize = 256;

/// A secret value. No `Debug`, `Display` or `Serialize`: the only way to see
/// the plaintext is an explicit `expose_secret()` on its parts.
#[derive(Clone)]
pub enum SecretValue {
    /// A text value.
    Text(SecretString),
    /// Named string fields; names are not secret, values are.
    Fields(BTreeMap<String, SecretString>),
}

impl SecretValue {
    /// Checks field names. Text needs no check beyond being UTF-8.
    pub fn validate(&self) -> Result<(), CoreError> {
        if let SecretValue::Fields(fields) = self {
            for name in fields.keys() {
                if name.is_empty() || name.len() > MAX_FIELD_NAME {
                    return Err(CoreError::Invalid(InvalidInput::FieldNameLength {
                        max: MAX_FIELD_NAME,
                    }));
                }
                if name.chars().any(char::is_control) {
                    return Err(CoreError::Invalid(InvalidInput::FieldNameControl));
                }
            }
        }
        Ok(())
    }

    /// The plaintext that gets sealed.
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        match self {
            SecretValue::Text(t) => {
                let mut out = Zeroizing::new(Vec::with_capacity(1 + t.len()));
                out.push(TAG_TEXT);
                out.extend_from_slice(t.expose_secret().as_bytes());
                out
            }
            SecretValue::Fields(fields) => {
                let exposed: BTreeMap<&str, &str> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.expose_secret()))
                    .collect();
                let size = fields
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 8)
                    .sum::<usize>()
                    + 3;
                let mut out = Zeroizing::new(Vec::with_capacity(size));
                out.push(TAG_FIELDS);
                // Writing into a pre-sized buffer avoids reallocations, which
                // would leave unzeroized copies of the plaintext behind.
                serde_json::to_writer(&mut *out, &exposed)
                    .expect("serialising a map of strings cannot fail");
                out
            }
        }
    }

    /// Parses an opened plaintext.
    pub(crate) fn decode(plain: &SecretBytes) -> Result<SecretValue, CoreError> {
        let bytes = plain.expose_secret();
        let corrupt = || CoreError::Corrupt(crate::error::Integrity::ValueEncoding);
        match bytes.split_first() {
            Some((&TAG_TEXT, rest)) => {
                let text = std::str::from_utf8(rest).map_err(|_| corrupt())?;
                Ok(SecretValue::Text(SecretString::from(text)))
            }
            Some((&TAG_FIELDS, rest)) => {
                let map: BTreeMap<String, String> =
                    serde_json::from_slice(rest).map_err(|_| corrupt())?;
                Ok(SecretValue::Fields(
                    map.into_iter()
                        .map(|(k, v)| (k, SecretString::new(v)))
                        .collect(),
                ))
            }
            _ => Err(corrupt()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let text = SecretValue::Text(SecretString::from("hunter2\nline two"));
        let fields = SecretValue::Fields(BTreeMap::from([
            ("user".to_string(), SecretString::from("app")),
            ("password".to_string(), SecretString::from("p\"w\\d")),
        ]));
        for v in [text, fields] {
            let plain = SecretBytes::new(v.encode().to_vec());
            match (SecretValue::decode(&plain).unwrap(), &v) {
                (SecretValue::Text(a), SecretValue::Text(b)) => {
                    assert_eq!(a.expose_secret(), b.expose_secret())
                }
                (SecretValue::Fields(a), SecretValue::Fields(b)) => {
                    assert_eq!(a.len(), b.len());
                    for (k, v) in b {
                        assert_eq!(a[k].expose_secret(), v.expose_secret());
                    }
                }
                _ => panic!("kind changed"),
            }
        }
    }

    #[test]
    fn unknown_encodings_are_corrupt() {
        for bad in [&b""[..], b"\x09abc", b"\x01\xff\xfe", b"\x02not json"] {
            assert!(SecretValue::decode(&SecretBytes::new(bad.to_vec())).is_err());
        }
    }

    #[test]
    fn field_names_are_checked() {
        let bad = |name: &str| {
            SecretValue::Fields(BTreeMap::from([(
                name.to_string(),
                SecretString::from("v"),
            )]))
            .validate()
            .is_err()
        };
        assert!(bad(""));
        assert!(bad("a\nb"));
        assert!(bad(&"n".repeat(257)));
        assert!(!bad("password"));
    }
}
