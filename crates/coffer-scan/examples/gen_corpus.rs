//! Writes a freshly generated labelled corpus to a directory, for the
//! benchmark that compares scanners (bench/scan/):
//! `DIR/<case>/<file name>` per sample and `DIR/labels.json` listing each
//! file's expected rule (or null) and kind.
//!
//! Usage: cargo run -p coffer-scan --example gen_corpus -- DIR [COPIES]

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: gen_corpus DIR [COPIES]");
        std::process::exit(2);
    };
    let copies: usize = args
        .next()
        .map_or(10, |c| c.parse().expect("COPIES is a number"));
    let dir = std::path::PathBuf::from(dir);
    let mut labels = serde_json::Map::new();
    for s in coffer_scan::corpus::generate(copies) {
        let sub = dir.join(&s.case);
        std::fs::create_dir_all(&sub).expect("create the case directory");
        std::fs::write(sub.join(&s.file_name), &s.content).expect("write the sample");
        labels.insert(
            format!("{}/{}", s.case, s.file_name),
            serde_json::json!({ "expect": s.expect, "kind": s.kind }),
        );
    }
    std::fs::write(
        dir.join("labels.json"),
        serde_json::to_string_pretty(&labels).expect("JSON"),
    )
    .expect("write labels.json");
}
