//! The canary harness: one secret value that must appear nowhere but where
//! it belongs.
//!
//! A test makes a [`Canary`], sends its value through every path it wants to
//! cover, hands the harness everything the system produced (command output,
//! response bodies, files), saying which of those are *supposed* to show the
//! value (the output of `coffer get`, the body of a read), and calls
//! [`Canary::assert_nowhere_else`]. The search also looks for the value's
//! base64 and hex forms, so an encoded leak is caught too.
//!
//! A token canary ([`Canary::with_value`] with a real token) checks the same
//! for a credential: a token sent through `${COFFER_TOKEN}` expansion,
//! token-shaped paths and names must appear in no output, no server log and
//! no audit record ([`Canary::search_server`]).

use std::path::Path;

use super::{Response, Run, contains, files_under, read_listed};

/// A canary value and the places searched for it.
pub struct Canary {
    /// The value.
    pub value: String,
    places: Vec<(String, Vec<u8>)>,
    allowed: Vec<String>,
}

impl Canary {
    /// A fresh value that cannot occur by chance.
    pub fn new(label: &str) -> Canary {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Canary {
            value: format!("CANARY-{label}-{nanos:x}-{}", std::process::id()),
            places: Vec::new(),
            allowed: Vec::new(),
        }
    }

    /// A canary for a value that already exists, such as a token: the
    /// searches look for it, raw and encoded, wherever it must not be.
    pub fn with_value(value: impl Into<String>) -> Canary {
        Canary {
            value: value.into(),
            places: Vec::new(),
            allowed: Vec::new(),
        }
    }

    /// Adds everything a server produced: its stdout and stderr, its audit
    /// log (named on its own, so a leak there is reported as one) and every
    /// file of its data directory.
    pub fn search_server(&mut self, server: &super::Server) {
        self.search(
            "server stdout",
            read_listed(&server.stdout_log).unwrap_or_default(),
        );
        self.search(
            "server stderr",
            read_listed(&server.stderr_log).unwrap_or_default(),
        );
        self.search(
            "audit log",
            read_listed(&server.data_dir().join("audit.log")).unwrap_or_default(),
        );
        self.search_dir(&server.data_dir());
    }

    /// Adds bytes to search, under a name for the report.
    pub fn search(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.places.push((name.into(), bytes.into()));
    }

    /// Adds a command's stdout and stderr.
    pub fn search_run(&mut self, name: &str, run: &Run) {
        self.search(format!("{name}: stdout"), run.stdout());
        self.search(format!("{name}: stderr"), run.stderr());
    }

    /// Adds a command's stderr; its stdout is where the value belongs.
    pub fn search_run_allowing_stdout(&mut self, name: &str, run: &Run) {
        assert!(
            run.stdout().contains(&self.value),
            "{name}: expected the value on stdout"
        );
        self.allowed.push(format!("{name}: stdout"));
        self.search(format!("{name}: stderr"), run.stderr());
    }

    /// Adds an HTTP response (headers and body).
    pub fn search_response(&mut self, name: &str, r: &Response) {
        let mut bytes = Vec::new();
        for (k, v) in &r.headers {
            bytes.extend_from_slice(format!("{k}: {v}\n").as_bytes());
        }
        bytes.extend_from_slice(&r.body);
        self.search(format!("{name}: response"), bytes);
    }

    /// Adds every file below `dir`.
    pub fn search_dir(&mut self, dir: &Path) {
        for f in files_under(dir) {
            if let Some(bytes) = read_listed(&f) {
                self.search(f.display().to_string(), bytes);
            }
        }
    }

    /// Fails, naming every place, if the value (raw, base64 or hex) is in
    /// any searched place.
    pub fn assert_nowhere_else(&self) {
        use base64::Engine;
        let forms = [
            self.value.as_bytes().to_vec(),
            base64::engine::general_purpose::STANDARD
                .encode(self.value.as_bytes())
                .into_bytes(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(self.value.as_bytes())
                .into_bytes(),
            self.value
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ];
        let leaks: Vec<&str> = self
            .places
            .iter()
            .filter(|(_, bytes)| forms.iter().any(|f| contains(bytes, f)))
            .map(|(name, _)| name.as_str())
            .collect();
        assert!(self.places.len() > 3, "the harness searched almost nothing");
        assert!(
            leaks.is_empty(),
            "the canary leaked into: {leaks:#?} (allowed only in {:?})",
            self.allowed
        );
    }
}
