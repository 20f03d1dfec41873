//! Pattern matching agrees with a simple reference: the pattern translated
//! to an anchored regular expression, following the syntax documented at
//! coffer-policy's crate root. Parsing never panics.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    pattern: String,
    targets: Vec<String>,
}

/// The documented meaning of an accepted pattern, as a regular expression.
fn reference(pattern: &str) -> regex::Regex {
    let text = pattern.strip_prefix('/').unwrap_or(pattern);
    let segment = |s: &str| {
        if s == "+" || s == "*" {
            "[^/]+".to_string()
        } else {
            regex::escape(s)
        }
    };
    let body = if text == "*" {
        ".*".to_string()
    } else if let Some(stem) = text.strip_suffix('*') {
        // `a/b/*` is everything inside a/b; `a/b*` a prefix on the text.
        let (whole, partial) = match stem.rfind('/') {
            Some(i) => (&stem[..i], &stem[i + 1..]),
            None => ("", stem),
        };
        let mut out: Vec<String> = if stem.contains('/') {
            whole.split('/').map(segment).collect()
        } else {
            Vec::new()
        };
        out.push(format!("{}.*", regex::escape(partial)));
        out.join("/")
    } else if let Some(folder) = text.strip_suffix('/') {
        if folder.is_empty() {
            String::new()
        } else {
            let segs: Vec<String> = folder.split('/').map(segment).collect();
            format!("{}/", segs.join("/"))
        }
    } else if text.is_empty() {
        String::new()
    } else {
        text.split('/').map(segment).collect::<Vec<_>>().join("/")
    };
    regex::Regex::new(&format!("^(?s:{body})$")).unwrap()
}

fuzz_target!(|input: Input| {
    let Ok(pattern) = coffer_policy::Pattern::parse(&input.pattern) else {
        return;
    };
    let re = reference(&input.pattern);
    let mut targets = input.targets;
    // Targets near the pattern itself, where the interesting edges are.
    let p = pattern.as_str().to_string();
    targets.push(p.replace(['*', '+'], "seg"));
    targets.push(p.replace('*', ""));
    targets.push(format!("{}/", p.replace(['*', '+'], "seg")));
    for target in targets.iter().take(64) {
        assert_eq!(
            pattern.matches(target),
            re.is_match(target),
            "pattern {:?} on target {:?}",
            input.pattern,
            target
        );
    }
});
