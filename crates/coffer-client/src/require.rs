//! A startup check for applications: fail fast, naming every missing
//! variable at once, instead of failing later on the first one used.

/// Variables [`require`] found missing or empty, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVars {
    /// Names not set at all.
    pub missing: Vec<String>,
    /// Names set to the empty string.
    pub empty: Vec<String>,
}

impl std::fmt::Display for MissingVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "missing environment variable(s): {}",
                self.missing.join(", ")
            ));
        }
        if !self.empty.is_empty() {
            parts.push(format!(
                "empty environment variable(s): {}",
                self.empty.join(", ")
            ));
        }
        write!(
            f,
            "{} (run the application with `coffer run --path PREFIX -- ...`, or set them)",
            parts.join("; ")
        )
    }
}

impl std::error::Error for MissingVars {}

/// Checks that every one of `names` is set in the environment and not
/// empty; the error names all that are not (never a value).
///
/// ```no_run
/// // First thing in main:
/// if let Err(e) = coffer_client::require(&["DATABASE_URL", "API_KEY"]) {
///     eprintln!("error: {e}");
///     std::process::exit(78); // EX_CONFIG
/// }
/// let url = std::env::var("DATABASE_URL").unwrap();
/// # let _ = url;
/// ```
pub fn require(names: &[&str]) -> Result<(), MissingVars> {
    require_from(names, |n| std::env::var_os(n))
}

/// [`require`] against any source of variables.
pub fn require_from(
    names: &[&str],
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(), MissingVars> {
    let mut err = MissingVars {
        missing: Vec::new(),
        empty: Vec::new(),
    };
    for &name in names {
        match lookup(name) {
            None => err.missing.push(name.to_string()),
            Some(v) if v.is_empty() => err.empty.push(name.to_string()),
            Some(_) => {}
        }
    }
    if err.missing.is_empty() && err.empty.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named_at_once_and_no_value() {
        let env = |n: &str| match n {
            "SET" => Some("s3cr3t-value".into()),
            "EMPTY" => Some("".into()),
            _ => None,
        };
        assert_eq!(require_from(&["SET"], env), Ok(()));
        let e = require_from(&["A", "SET", "EMPTY", "B"], env).unwrap_err();
        assert_eq!(e.missing, ["A", "B"]);
        assert_eq!(e.empty, ["EMPTY"]);
        let msg = e.to_string();
        assert!(
            msg.contains("missing environment variable(s): A, B"),
            "{msg}"
        );
        assert!(
            msg.contains("empty environment variable(s): EMPTY"),
            "{msg}"
        );
        assert!(!msg.contains("s3cr3t"));
    }
}
