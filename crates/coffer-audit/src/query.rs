//! Queries over a log: filtered records, and who read a secret.
//!
//! Both read the log line by line (memory does not grow with its size) and
//! skip lines that are not records, counting them, so a damaged log can
//! still be searched (`coffer audit verify` is what judges integrity).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use coffer_policy::Pattern;
use serde::{Deserialize, Serialize};

use crate::chain::MAX_LINE;
use crate::record::{Kind, Outcome, Record};

/// What to keep.
#[derive(Debug, Default)]
pub struct Filter {
    /// A secret path, a folder (`app/prod/`), or a pattern (`*/prod/*`).
    pub path: Option<Pattern>,
    /// A user or display name, an accessor, or an `hmac-sha256:` tag of a
    /// token or login name.
    pub actor: Option<String>,
    /// Records at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Records before this time (RFC 3339).
    pub until: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only this operation (`secret.read`, `token.create`, ...).
    pub op: Option<String>,
    /// Only this kind of record.
    pub kind: Option<Kind>,
    /// Only machine logins through a role that lacks a binding today's
    /// rules require (records with `needs_binding`).
    pub needs_binding: bool,
}

/// Normalises a time for comparison with records' times, which all have the
/// shape `YYYY-MM-DDTHH:MM:SS.mmmZ` and so compare correctly as strings.
pub fn normalize_time(input: &str) -> Result<String, String> {
    let t = time::OffsetDateTime::parse(input, &time::format_description::well_known::Rfc3339)
        .or_else(|_| {
            time::Date::parse(input, time::macros::format_description!("[year]-[month]-[day]"))
                .map(|d| d.midnight().assume_utc())
        })
        .map_err(|_| {
            format!("{input:?} is not a time: use RFC 3339 (2026-11-23T10:00:00Z) or a date (2026-11-23)")
        })?;
    Ok(crate::format_time(t))
}

impl Filter {
    /// Whether `r` passes.
    pub fn matches(&self, r: &Record) -> bool {
        if let Some(p) = &self.path
            && !r.path.as_deref().is_some_and(|path| p.matches(path))
            && !r
                .reads
                .iter()
                .chain(&r.writes)
                .any(|read| p.matches(&read.path))
        {
            return false;
        }
        if let Some(a) = &self.actor {
            let actor = r
                .actor
                .as_ref()
                .is_some_and(|x| &x.name == a || &x.accessor == a);
            let tagged = r.token.as_ref() == Some(a) || r.login.as_ref() == Some(a);
            if !actor && !tagged {
                return false;
            }
        }
        if self
            .since
            .as_ref()
            .is_some_and(|s| r.time.as_str() < s.as_str())
        {
            return false;
        }
        if self
            .until
            .as_ref()
            .is_some_and(|u| r.time.as_str() >= u.as_str())
        {
            return false;
        }
        if self.outcome.is_some() && r.outcome != self.outcome {
            return false;
        }
        if self.op.as_ref().is_some_and(|op| r.op.as_ref() != Some(op)) {
            return false;
        }
        if self.kind.is_some_and(|k| r.kind != k) {
            return false;
        }
        if self.needs_binding && r.needs_binding.is_none() {
            return false;
        }
        true
    }
}

/// The result of [`search`].
#[derive(Debug, Serialize)]
pub struct Found {
    /// Matching records, oldest first.
    pub records: Vec<Record>,
    /// More matched than `limit`; these are the most recent.
    pub truncated: bool,
    /// Lines that were not records.
    pub unreadable: u64,
}

/// The records of a log that pass `filter`: the most recent `limit`.
pub fn search(reader: impl BufRead, filter: &Filter, limit: usize) -> std::io::Result<Found> {
    search_where(reader, filter, limit, |_| true)
}

/// [`search`], keeping only the records `shown` lets through (those the
/// caller may see), before the limit is counted.
pub fn search_where(
    reader: impl BufRead,
    filter: &Filter,
    limit: usize,
    mut shown: impl FnMut(&Record) -> bool,
) -> std::io::Result<Found> {
    let mut out = std::collections::VecDeque::new();
    let mut truncated = false;
    let unreadable = each_record(reader, |r| {
        if filter.matches(&r) && shown(&r) {
            if out.len() == limit {
                out.pop_front();
                truncated = true;
            }
            if limit > 0 {
                out.push_back(r);
            }
        }
    })?;
    Ok(Found {
        records: out.into(),
        truncated,
        unreadable,
    })
}

/// One identity that read a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reader {
    /// `service` or `human`.
    pub kind: String,
    /// User or display name.
    pub name: String,
    /// Token accessor.
    pub accessor: String,
    /// Successful reads.
    pub reads: u64,
    /// First and last read.
    pub first: String,
    /// Last read.
    pub last: String,
    /// Versions read.
    pub versions: BTreeSet<u64>,
    /// Addresses read from.
    pub sources: BTreeSet<String>,
    /// Some reads were break-glass reads.
    pub breakglass: bool,
}

/// Every identity that read the value of `path` (version `version`, or
/// any), one entry per token, by first read.
pub fn readers(
    reader: impl BufRead,
    path: &str,
    version: Option<u64>,
) -> std::io::Result<(Vec<Reader>, u64)> {
    let mut by_token: BTreeMap<String, Reader> = BTreeMap::new();
    let unreadable = each_record(reader, |r| {
        let served: Vec<Option<u64>> = r
            .values_served()
            .into_iter()
            .filter(|&(p, v)| p == path && version.is_none_or(|want| v == Some(want)))
            .map(|(_, v)| v)
            .collect();
        if served.is_empty() {
            return;
        }
        let Some(actor) = &r.actor else { return };
        let e = by_token
            .entry(actor.accessor.clone())
            .or_insert_with(|| Reader {
                kind: actor.kind.clone(),
                name: actor.name.clone(),
                accessor: actor.accessor.clone(),
                reads: 0,
                first: r.time.clone(),
                last: r.time.clone(),
                versions: BTreeSet::new(),
                sources: BTreeSet::new(),
                breakglass: false,
            });
        e.reads += 1;
        e.last.clone_from(&r.time);
        e.versions.extend(served.into_iter().flatten());
        e.sources.extend(r.source.clone());
        e.breakglass |= r.breakglass;
    })?;
    let mut out: Vec<Reader> = by_token.into_values().collect();
    out.sort_by(|a, b| a.first.cmp(&b.first));
    Ok((out, unreadable))
}

/// Every secret name a record holds: its path, and the paths of the
/// versions it read or wrote.
pub fn names(r: &Record) -> impl Iterator<Item = &str> {
    r.path
        .as_deref()
        .into_iter()
        .chain(r.reads.iter().chain(&r.writes).map(|x| x.path.as_str()))
}

/// The names a record could reveal, for hiding it from a caller whose
/// policies deny one: [`names`], each also as the secret path it stands
/// for once empty and `.` segments are dropped (`app//prod/KEY` and
/// `app/prod/./KEY` are `app/prod/KEY` to a reader, though not to a
/// policy), and every tail of the URL path the request named, decoded
/// (`/api/v1/secrets/app/prod/KEY` gives `app/prod/KEY`, `prod/KEY` and
/// so on): a record hidden by any of them is hidden.
pub fn names_to_hide(r: &Record) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        let segs: Vec<&str> = name
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let normal = segs.join("/");
        for n in [name.to_string(), normal] {
            if !n.is_empty() && !out.contains(&n) {
                out.push(n);
            }
        }
    };
    for n in names(r) {
        add(n);
    }
    if let Some(route) = r.route.as_deref() {
        let decoded = percent_decode(route);
        let segs: Vec<&str> = decoded
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        for i in 0..segs.len() {
            add(&segs[i..].join("/"));
        }
    }
    out
}

/// `%XX` sequences decoded (once); anything that does not decode to UTF-8
/// kept as it was.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Calls `f` with each record; returns how many lines were not records.
fn each_record(reader: impl BufRead, mut f: impl FnMut(Record)) -> std::io::Result<u64> {
    let mut reader = reader;
    let mut unreadable = 0;
    let mut buf = Vec::new();
    loop {
        if crate::chain::read_line(&mut reader, &mut buf)? == 0 {
            return Ok(unreadable);
        }
        if buf.len() > MAX_LINE {
            // Skip the rest of an overlong line.
            unreadable += 1;
            let mut sink = Vec::new();
            reader.read_until(b'\n', &mut sink)?;
            continue;
        }
        match serde_json::from_slice::<Record>(buf.trim_ascii_end()) {
            Ok(mut r) => {
                // Either format: what a version 2 line leaves out is put
                // back, so filters and reports see every field.
                r.expand();
                f(r)
            }
            Err(_) => unreadable += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Actor;

    fn rec(time: &str, name: &str, op: &str, path: &str, status: u16, version: u64) -> String {
        let r = Record {
            seq: Some(1),
            time: time.into(),
            actor: Some(Actor {
                kind: "human".into(),
                name: name.into(),
                accessor: format!("acc_{name}"),
                via: None,
            }),
            source: Some("127.0.0.1".into()),
            op: Some(op.into()),
            path: Some(path.into()),
            version: Some(version),
            status: Some(status),
            outcome: Some(Outcome::of_status(status)),
            ..Record::default()
        };
        serde_json::to_string(&r).unwrap() + "\n"
    }

    fn fixture() -> String {
        [
            rec(
                "2026-11-01T10:00:00.000Z",
                "ann",
                "secret.read",
                "app/prod/db",
                200,
                1,
            ),
            rec(
                "2026-11-02T10:00:00.000Z",
                "bob",
                "secret.read",
                "app/prod/db",
                403,
                1,
            ),
            rec(
                "2026-11-03T10:00:00.000Z",
                "bob",
                "secret.read",
                "app/dev/db",
                200,
                2,
            ),
            "garbage\n".to_string(),
            rec(
                "2026-11-04T10:00:00.000Z",
                "cid",
                "secret.write",
                "app/prod/db",
                200,
                2,
            ),
            rec(
                "2026-11-05T10:00:00.000Z",
                "ann",
                "secret.read",
                "app/prod/db",
                200,
                2,
            ),
        ]
        .concat()
    }

    #[test]
    fn needs_binding_keeps_only_marked_logins() {
        let login = |name: &str, why: Option<&str>| {
            let r = Record {
                time: "2026-11-05T10:00:00.000Z".into(),
                actor: Some(Actor {
                    kind: "service".into(),
                    name: name.into(),
                    accessor: format!("acc_{name}"),
                    via: None,
                }),
                op: Some("auth.jwt_login".into()),
                status: Some(200),
                outcome: Some(Outcome::Ok),
                needs_binding: why.map(str::to_string),
                ..Record::default()
            };
            String::from_utf8(r.encode().unwrap()).unwrap() + "\n"
        };
        let log = fixture()
            + &login("old", Some("the github issuer requires a second binding"))
            + &login("new", None);
        let filter = Filter {
            needs_binding: true,
            ..Filter::default()
        };
        let found = search(log.as_bytes(), &filter, 100).unwrap();
        assert_eq!(names(&found), ["old"]);
        let all = search(log.as_bytes(), &Filter::default(), 100).unwrap();
        assert_eq!(all.records.len(), 7);
    }

    fn names(found: &Found) -> Vec<&str> {
        found
            .records
            .iter()
            .map(|r| r.actor.as_ref().unwrap().name.as_str())
            .collect()
    }

    #[test]
    fn filters_combine() {
        let f = fixture();
        let q = |filter: Filter| search(f.as_bytes(), &filter, 100).unwrap();
        let all = q(Filter::default());
        assert_eq!((all.records.len(), all.unreadable), (5, 1));
        let prod = q(Filter {
            path: Some(Pattern::parse("*/prod/*").unwrap()),
            ..Filter::default()
        });
        assert_eq!(names(&prod), ["ann", "bob", "cid", "ann"]);
        let denied = q(Filter {
            outcome: Some(Outcome::Denied),
            ..Filter::default()
        });
        assert_eq!(names(&denied), ["bob"]);
        let window = q(Filter {
            since: Some(normalize_time("2026-11-02").unwrap()),
            until: Some(normalize_time("2026-11-04T10:00:00Z").unwrap()),
            actor: Some("bob".into()),
            ..Filter::default()
        });
        assert_eq!(window.records.len(), 2);
        let by_accessor = q(Filter {
            actor: Some("acc_cid".into()),
            ..Filter::default()
        });
        assert_eq!(names(&by_accessor), ["cid"]);
        let newest = search(f.as_bytes(), &Filter::default(), 2).unwrap();
        assert!(newest.truncated);
        assert_eq!(names(&newest), ["cid", "ann"]);
    }

    #[test]
    fn readers_are_successful_reads_of_that_secret() {
        let f = fixture();
        let (all, _) = readers(f.as_bytes(), "app/prod/db", None).unwrap();
        assert_eq!(all.len(), 1, "bob was refused, cid wrote");
        assert_eq!(all[0].name, "ann");
        assert_eq!(all[0].reads, 2);
        assert_eq!(all[0].versions.iter().copied().collect::<Vec<_>>(), [1, 2]);
        let (v1, _) = readers(f.as_bytes(), "app/prod/db", Some(1)).unwrap();
        assert_eq!(v1[0].reads, 1);
        let (none, _) = readers(f.as_bytes(), "app/prod/db", Some(9)).unwrap();
        assert!(none.is_empty());
    }

    /// The hiding hole's neighbour: a denied name written with a doubled
    /// slash or a `.` segment (refused as invalid, so never normalised by
    /// the server) or percent-encoded in the URL path.
    #[test]
    fn hiding_hole_denied_names_in_other_spellings_are_checked() {
        let r = Record {
            path: Some("app//prod/./KEY".into()),
            route: Some("/api/v1/secrets/app%2F%2Fprod/KEY".into()),
            ..Record::default()
        };
        let names = names_to_hide(&r);
        for want in ["app/prod/KEY", "app//prod/./KEY", "prod/KEY"] {
            assert!(names.iter().any(|n| n == want), "{want}: {names:?}");
        }
    }

    #[test]
    fn times_normalize() {
        assert_eq!(
            normalize_time("2026-11-23T12:00:00+02:00").unwrap(),
            "2026-11-23T10:00:00.000Z"
        );
        assert!(normalize_time("yesterday").is_err());
    }
}
