//! Printing: JSON for scripts, aligned text for people.

use std::io::Write;

use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `s` as a person should see it: characters that a terminal would act on
/// or hide (controls, line and paragraph separators, direction overrides
/// and isolates, zero-width marks) shown as `\u{XXXX}`, a backslash
/// doubled. Every table and pair list goes through it; use it for any
/// server-supplied text printed for people.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    coffer_audit::sanitize::visible(s)
}

/// Prints rows of columns, aligned, on stdout. Cells are shown through
/// [`visible`].
pub fn table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let rows: Vec<Vec<std::borrow::Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| visible(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(|c| c.as_ref()).collect()))?;
    }
    Ok(())
}

/// Prints `key  value` pairs, aligned; values through [`visible`].
pub fn pairs(pairs: &[(&str, String)]) -> anyhow::Result<()> {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (k, v) in pairs {
        writeln!(out, "{k:<width$}  {}", visible(v))?;
    }
    Ok(())
}
