//! What verification reads of a line, without building the [`Record`].
//!
//! [`crate::chain::verify`] needs a few of a line's fields: its number, how
//! it was linked, its kind, the gap or the acknowledgement a notice
//! carries, and a notice's time and message. It must still refuse every
//! line that is not a valid [`Record`], because such a line was edited or
//! inserted. [`RecordView`] has exactly the fields of [`Record`] (and its
//! nested [`Actor`] and [`ReadRef`] have views with exactly theirs), with
//! the same names, types, defaults and serde attributes, and it is read by
//! the same `serde_json` deserializer, so it accepts exactly the lines a
//! [`Record`] accepts: a missing `time`, a number where a string belongs, a
//! duplicated field, a bad escape or text that is not UTF-8 fail both. Only
//! what is kept differs: strings verification does not use are checked as
//! a `String` would be and dropped ([`Checked`]), those it uses are
//! borrowed from the line when they hold no escape ([`Text`]), so a line
//! costs no allocation. The rare nested objects (a workload, an alert, a
//! gap) are the record's own types.
//!
//! The tests hold each view to its type's field list and compare the two
//! on every field with values of every JSON type, and on mutated logs.
//!
//! [`Actor`]: crate::record::Actor
//! [`ReadRef`]: crate::record::ReadRef

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

#[cfg(doc)]
use crate::record::Record;
use crate::record::{AlertInfo, Gap, Kind, Outcome, Workload};

/// What verification keeps of a line (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Linked<'a> {
    pub seq: Option<u64>,
    pub unkeyed: bool,
    pub kind: Kind,
    pub gap: Option<Gap>,
    pub time: Cow<'a, str>,
    pub acknowledges: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
}

/// Reads a line (without its newline) as verification needs it; `None` if
/// it is not a valid record.
pub(crate) fn read(line: &[u8]) -> Option<Linked<'_>> {
    let v: RecordView<'_> = serde_json::from_slice(line).ok()?;
    Some(Linked {
        seq: v.seq,
        unkeyed: v.unkeyed,
        kind: v.kind,
        gap: v.gap,
        time: v.time.0,
        acknowledges: v.acknowledges.map(|t| t.0),
        message: v.message.map(|t| t.0),
    })
}

/// [`read`] through a full [`Record`]: how verification read lines before
/// the view, kept as the reference the view is tested against.
#[cfg(any(test, feature = "reference"))]
pub(crate) fn read_full(line: &[u8]) -> Option<Linked<'_>> {
    let r: crate::record::Record = serde_json::from_slice(line).ok()?;
    Some(Linked {
        seq: r.seq,
        unkeyed: r.unkeyed,
        kind: r.kind,
        gap: r.gap,
        time: Cow::Owned(r.time),
        acknowledges: r.acknowledges.map(Cow::Owned),
        message: r.message.map(Cow::Owned),
    })
}

/// A JSON string, checked as a `String` is (escapes, surrogates, UTF-8)
/// and not kept.
#[derive(Debug, Default)]
pub(crate) struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Checked, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            // As `String` takes bytes: if they are UTF-8.
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Checked, E> {
                std::str::from_utf8(b)
                    .map(|_| Checked)
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(b), &self))
            }
        }
        d.deserialize_string(V)
    }
}

/// A JSON string that verification uses: borrowed from the line unless it
/// holds an escape. Accepts what a `String` accepts.
#[derive(Debug)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(s)))
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Text<'a>, E> {
                match std::str::from_utf8(b) {
                    Ok(s) => Ok(Text(Cow::Owned(s.to_owned()))),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(b), &self)),
                }
            }
        }
        d.deserialize_string(V(PhantomData))
    }
}

/// A JSON array of `T`, checked as a `Vec<T>` is and not kept.
#[derive(Debug)]
pub(crate) struct Many<T>(PhantomData<T>);

impl<T> Default for Many<T> {
    fn default() -> Many<T> {
        Many(PhantomData)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Many<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Many<T>, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Many<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Many<T>, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(Many::default())
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// [`crate::record::Actor`], checked.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "read only to check the line's shape")]
pub(crate) struct ActorView {
    kind: Checked,
    name: Checked,
    accessor: Checked,
    #[serde(default)]
    via: Option<Checked>,
}

/// [`crate::record::ReadRef`], checked.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "read only to check the line's shape")]
pub(crate) struct ReadRefView {
    path: Checked,
    version: u64,
}

/// [`Record`], field for field (see the module documentation).
#[derive(Debug, Deserialize)]
#[expect(
    dead_code,
    reason = "most fields are read only to check the line's shape"
)]
pub(crate) struct RecordView<'a> {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    unkeyed: bool,
    #[serde(default)]
    missed: Option<u64>,
    #[serde(default)]
    v: Option<u32>,
    #[serde(borrow)]
    time: Text<'a>,
    #[serde(rename = "type", default)]
    kind: Kind,
    #[serde(default)]
    request_id: Option<Checked>,
    #[serde(default)]
    actor: Option<ActorView>,
    #[serde(default)]
    token: Option<Checked>,
    #[serde(default)]
    source: Option<Checked>,
    #[serde(default)]
    method: Option<Checked>,
    #[serde(default)]
    route: Option<Checked>,
    #[serde(default)]
    op: Option<Checked>,
    #[serde(default)]
    decision: Option<Checked>,
    #[serde(default)]
    path: Option<Checked>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    reads: Many<ReadRefView>,
    #[serde(default)]
    writes: Many<ReadRefView>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    error: Option<Checked>,
    #[serde(default)]
    duration_us: Option<u64>,
    #[serde(default)]
    breakglass: bool,
    #[serde(default)]
    protected: bool,
    #[serde(default)]
    login: Option<Checked>,
    #[serde(default)]
    reason: Option<Checked>,
    #[serde(default)]
    workload: Option<Workload>,
    #[serde(default)]
    needs_binding: Option<Checked>,
    #[serde(default)]
    alert: Option<AlertInfo>,
    #[serde(default)]
    gap: Option<Gap>,
    #[serde(default, borrow)]
    acknowledges: Option<Text<'a>>,
    #[serde(default, borrow)]
    message: Option<Text<'a>>,
    #[serde(default)]
    chain: Option<Checked>,
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;
    use serde::de::{self, Deserializer, Visitor};

    use super::*;
    use crate::chain::{Head, append_line, verify, verify_reference};
    use crate::record::{Actor, ReadRef, Record};

    /// Asks a derived `Deserialize` for the fields it reads, in order.
    struct Probe(Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for &mut Probe {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        let mut p = Probe(None);
        let _ = T::deserialize(&mut p);
        p.0.expect("a struct")
    }

    #[test]
    fn each_view_has_its_types_fields_in_order() {
        // In order too: a struct may also be written as an array.
        assert_eq!(fields_of::<RecordView<'_>>(), fields_of::<Record>());
        assert_eq!(fields_of::<ActorView>(), fields_of::<Actor>());
        assert_eq!(fields_of::<ReadRefView>(), fields_of::<ReadRef>());
    }

    /// The view and the record take the line alike, and read it alike.
    fn check(line: &[u8]) {
        assert_eq!(
            read(line),
            read_full(line),
            "{}",
            String::from_utf8_lossy(line)
        );
    }

    /// Values of every JSON type, well and badly formed, that some field
    /// takes and others refuse.
    const VALUES: &[&[u8]] = &[
        b"null",
        b"true",
        b"false",
        b"0",
        b"1",
        b"-1",
        b"1.5",
        b"1e2",
        b"255",
        b"65535",
        b"65536",
        b"4294967295",
        b"4294967296",
        b"18446744073709551615",
        b"18446744073709551616",
        b"\"\"",
        b"\"x\"",
        b"\"ok\"",
        b"\"denied\"",
        b"\"notice\"",
        b"\"alert\"",
        b"\"request\"",
        b"\"Notice\"",
        b"\"a\\\"b\"",
        b"\"\\u00e9\"",
        b"\"\\ud83d\\ude00\"",
        b"\"\\ud800\"",
        b"\"\\udc00x\"",
        b"\"\\x\"",
        b"\"\xff\"",
        b"\"\xc3\xa9\"",
        b"\"\xed\xa0\x80\"",
        b"\"a\tb\"",
        b"\"a\x7fb\"",
        b"[]",
        b"[[]]",
        b"[1]",
        b"[\"a\",1]",
        b"[null]",
        b"[{\"path\":\"p\",\"version\":1}]",
        b"[[\"p\",1]]",
        b"[[\"p\",1,2]]",
        b"[{\"path\":\"p\"}]",
        b"[{\"path\":\"p\",\"version\":1,\"path\":\"q\"}]",
        b"[{\"path\":\"\xff\",\"version\":1}]",
        b"{}",
        b"{\"ok\":null}",
        b"{\"notice\":[]}",
        b"{\"first\":1,\"last\":2}",
        b"{\"first\":1,\"last\":2,\"first\":3}",
        b"[1,2]",
        b"{\"first\":1}",
        b"{\"kind\":\"k\",\"name\":\"n\",\"accessor\":\"a\"}",
        b"{\"kind\":\"k\",\"name\":\"n\",\"accessor\":\"a\",\"via\":null,\"x\":[1]}",
        b"[\"k\",\"n\",\"a\"]",
        b"[\"k\",\"n\",\"a\",null]",
        b"[\"k\",\"n\",\"a\",\"v\",1]",
        b"{\"kind\":\"k\",\"name\":\"n\"}",
        b"{\"kind\":\"k\",\"name\":\"n\",\"accessor\":\"a\",\"kind\":\"k\"}",
        b"{\"kind\":\"k\",\"name\":\"n\",\"accessor\":1}",
        b"{\"kind\":\"k\",\"name\":\"n\",\"accessor\":\"\\ud800\"}",
        b"{\"method\":\"jwt\",\"role\":\"r\",\"claims\":{\"a\":\"b\",\"a\":\"c\"}}",
        b"{\"method\":\"jwt\",\"role\":\"r\",\"claims\":{\"a\":1}}",
        b"{\"rule\":\"r\",\"subject\":\"s\",\"count\":1,\"window_secs\":0}",
        b"{\"rule\":\"r\",\"subject\":\"s\",\"count\":-1,\"window_secs\":0}",
        b"{\"a\":\"\xff\",\"b\":\"\\ud800\"}",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ];

    #[test]
    fn every_field_takes_what_the_records_field_takes() {
        let mut names: Vec<Vec<u8>> = fields_of::<Record>()
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect();
        // A field the record does not have, and one named with an escape.
        names.push(b"unknown".to_vec());
        names.push(b"s\\u0065q".to_vec());
        names.push(b"typ\\u0065".to_vec());
        let join = |parts: &[&[u8]]| parts.concat();
        for name in &names {
            for v in VALUES {
                let field = join(&[b"\"", name, b"\":", v]);
                let lines = if name == b"time" {
                    vec![
                        join(&[b"{", &field, b"}"]),
                        join(&[b"{", &field, b",", &field, b"}"]),
                    ]
                } else {
                    vec![
                        join(&[b"{\"time\":\"t\",", &field, b"}"]),
                        join(&[b"{", &field, b",\"time\":\"t\"}"]),
                        join(&[b"{\"time\":\"t\",", &field, b",", &field, b"}"]),
                        join(&[
                            b"{\"seq\":3,\"type\":\"notice\",",
                            &field,
                            b",\"time\":\"t\"}",
                        ]),
                    ]
                };
                for line in lines {
                    check(&line);
                }
            }
        }
    }

    #[test]
    fn whole_lines_are_taken_alike() {
        let cases: &[&[u8]] = &[
            b"",
            b" ",
            b"{}",
            b"[]",
            b"null",
            b"\"t\"",
            b"{\"time\":\"t\"}",
            b"{\"time\":\"t\"} ",
            b"{\"time\":\"t\"}\r",
            b" {\"time\":\"t\"}",
            b"{\"time\":\"t\"} x",
            b"{\"time\":\"t\"}{}",
            b"{\"time\":\"t\",}",
            b"{\"time\":\"t\"",
            b"{\"time\":\"t\\u00e9\",\"message\":\"a\\nb\",\"acknowledges\":\"\\u0030\"}",
            b"{\"time\" : \"t\" , \"seq\" : 7 }",
            b"{\"time\":\"t\",\"seq\":07}",
            b"{\"time\":\"t\",\"seq\":-0}",
            b"{\"time\":\"t\",\"seq\":7.0}",
            b"[\"t\"]",
            b"[null,false,null,null,\"t\"]",
            b"[1,true,null,2,\"t\",\"notice\"]",
            b"[1,true,null,2,\"t\",\"notice\",null,null,null,null,null,null,null,null,null,null,[],[],null,null,null,null,false,false,null,null,null,null,null,{\"first\":1,\"last\":2},\"ack\",\"msg\",\"c\",\"extra\"]",
            b"[1,true,null,2,\"t\",\"notice\",null,null,null,null,null,null,null,null,null,null,[],[],null,null,null,null,false,false,null,null,null,null,null,{\"first\":1,\"last\":2},\"ack\",\"msg\",\"c\"]",
            b"{\"time\":\"t\",\"type\":{\"notice\":null}}",
            b"{\"time\":\"t\",\"type\":{\"notice\":1}}",
            b"{\"time\":\"t\",\"outcome\":{\"ok\":null}}",
            b"\xef\xbb\xbf{\"time\":\"t\"}",
            b"{\"time\":\"t\",\"\xff\":1}",
            b"{\"time\":\"t\",\"message\":\"\xff\"}",
            b"{\"time\":\"\xff\"}",
        ];
        for line in cases {
            check(line);
        }
    }

    fn key() -> coffer_crypto::AuditKey {
        coffer_crypto::Keyring::generate(0).audit_key()
    }

    /// A log with one of each kind of line verification reads: requests
    /// (the first format and version 2, with actors, reads and escapes),
    /// lines written while sealed, an alert, a workload login, notices with
    /// a gap (and the jump in numbering after it), an acknowledgement and a
    /// rotation notice.
    fn varied_log(key: &coffer_crypto::AuditKey) -> (Vec<u8>, Head) {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let mut head = Head::EMPTY;
        let read = crate::record::tests::typical_read();
        let mut push = |r: &Record, keyed: bool, head: &mut Head, v2: bool| {
            let json = if v2 {
                r.encode().unwrap()
            } else {
                serde_json::to_vec(r).unwrap()
            };
            append_line(&mut out, &mut scratch, head, keyed.then_some(key), 0, &json);
        };
        push(
            &Record::notice("audit log rotated: (records 1 to 9)"),
            true,
            &mut head,
            true,
        );
        push(&read, true, &mut head, true);
        push(&read, true, &mut head, false);
        push(&read, false, &mut head, true);
        let bundle = Record {
            reads: vec![ReadRef {
                path: "a/\"b\"\u{e9}".into(),
                version: 2,
            }],
            message: Some("line\nbreak \u{2028}".into()),
            ..read.clone()
        };
        push(&bundle, true, &mut head, true);
        let login = Record {
            workload: Some(Workload {
                method: "jwt".into(),
                role: "ci".into(),
                claims: [("repo".to_string(), "x/y".to_string())].into(),
                ..Default::default()
            }),
            ..read.clone()
        };
        push(&login, true, &mut head, true);
        let alert = Record::sink_alert("failure_burst", "stdout", 3, "three".into());
        push(&alert, true, &mut head, true);
        // A gap: records 8 to 10 lost, the notice is 11.
        let gap = Record {
            gap: Some(Gap { first: 8, last: 10 }),
            ..Record::notice("audit log gap: records 8 to 10")
        };
        head.seq = 10;
        push(&gap, true, &mut head, true);
        let ack = Record {
            acknowledges: Some(crate::hex(&head.link)),
            ..Record::notice("acknowledged")
        };
        push(&ack, true, &mut head, true);
        push(&read, true, &mut head, true);
        push(&Record::notice("audit log closed"), true, &mut head, true);
        (out, head)
    }

    /// Bytes that matter to JSON, to the line's framing, and to UTF-8.
    const ALPHABET: &[u8] = b"{}[]\":,\\ \t\n01-9.eEtrufalsnu\xff\xc3\xa9x";

    #[derive(Debug, Clone)]
    enum Mutation {
        Replace(usize, u8),
        Insert(usize, Vec<u8>),
        Delete(usize, usize),
        CopyLine(usize, usize),
        SwapLines(usize, usize),
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let byte = prop::sample::select(ALPHABET.to_vec());
        prop_oneof![
            4 => (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
            3 => (any::<usize>(), prop::collection::vec(byte, 1..4))
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            2 => (any::<usize>(), 1..6usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::CopyLine(a, b)),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
            1 => any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(log: &mut Vec<u8>, m: &Mutation) {
        let len = log.len().max(1);
        let mut lines: Vec<Vec<u8>> = log
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        let n = lines.len().max(1);
        match m {
            Mutation::Replace(i, b) => {
                if let Some(x) = log.get_mut(i % len) {
                    *x = *b;
                }
            }
            Mutation::Insert(i, b) => {
                let at = i % (log.len() + 1);
                log.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(i, k) => {
                let at = i % len;
                let end = (at + k).min(log.len());
                log.drain(at.min(end)..end);
            }
            Mutation::CopyLine(a, b) if !lines.is_empty() => {
                let line = lines[a % n].clone();
                lines.insert(b % (n + 1), line);
                *log = lines.concat();
            }
            Mutation::SwapLines(a, b) if !lines.is_empty() => {
                lines.swap(a % n, b % n);
                *log = lines.concat();
            }
            Mutation::Truncate(i) => log.truncate(i % len),
            _ => {}
        }
    }

    #[test]
    fn the_varied_log_verifies_alike() {
        let k = key();
        let (log, head) = varied_log(&k);
        let fast = verify(Cursor::new(&log), &k, Some(head)).unwrap();
        assert_eq!(
            fast,
            verify_reference(Cursor::new(&log), &k, Some(head)).unwrap()
        );
        // The gap is reported and acknowledged; everything else is intact.
        assert!(fast.ok(), "{fast:?}");
        assert_eq!((fast.records, fast.unkeyed, fast.gaps.len()), (11, 1, 1));
        assert!(fast.gaps[0].acknowledged);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The fast path accepts and refuses exactly what the full parse
        /// does, and says the same about what it refuses: every line of a
        /// mutated log reads alike, and the two verifications agree.
        #[test]
        fn a_mutated_log_verifies_as_with_full_records(
            mutations in prop::collection::vec(mutation(), 1..4),
            with_head in any::<bool>(),
        ) {
            let k = key();
            let (mut log, head) = varied_log(&k);
            for m in &mutations {
                apply(&mut log, m);
            }
            for line in log.split(|b| *b == b'\n') {
                prop_assert_eq!(read(line), read_full(line));
            }
            let head = with_head.then_some(head);
            let fast = verify(Cursor::new(&log), &k, head).unwrap();
            let full = verify_reference(Cursor::new(&log), &k, head).unwrap();
            prop_assert_eq!(fast, full);
        }
    }
}
