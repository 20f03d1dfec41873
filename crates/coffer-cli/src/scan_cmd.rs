//! `coffer scan`: finds secrets in files, standard input, the git index
//! (`--staged`) or git history (`--history`), with coffer-scan's engine.
//!
//! This module does the I/O the engine leaves out: walking directories in
//! parallel (one worker per core), reading files (regular files only, never
//! through a symlink, none larger than `--max-file-size`), and running `git`
//! as a child process, whose output is read as a stream. It never needs the
//! server, and never prints a found secret: reports carry a redacted match.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use clap::{Args, ValueEnum};
use coffer_scan::report::{self, Commit, Reported};
use coffer_scan::{Baseline, Config, Scanner};

use crate::exit::{Status, fail};

/// Files larger than this are skipped unless `--max-file-size` says otherwise.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The baseline the pre-commit hook passes when the repository has one.
pub const DEFAULT_BASELINE: &str = ".coffer-scan-baseline.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per finding: FILE:LINE:COLUMN: RULE: REDACTED (DESCRIPTION).
    Text,
    /// {"findings": [...]}.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and directories to scan (default: the current directory); `-`
    /// reads standard input.
    #[arg(value_name = "PATH", conflicts_with_all = ["staged", "history"])]
    pub paths: Vec<OsString>,
    /// Scan what would be committed: the staged (index) version of every
    /// added, copied, modified or renamed file.
    #[arg(long, conflicts_with = "history")]
    pub staged: bool,
    /// Scan the lines every commit added, in RANGE (a `git log` revision
    /// range; default: all of HEAD's history). Reports commit, author and date.
    #[arg(long, value_name = "RANGE", num_args = 0..=1, default_missing_value = "")]
    pub history: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Report only findings not in this baseline file.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write every current finding to the --baseline file (creating or
    /// replacing it) instead of reporting them; exits 0.
    #[arg(long, requires = "baseline")]
    pub write_baseline: bool,
    /// Skip files that git ignores (by default ignored files such as .env are
    /// scanned: that is where secrets sit before they leak).
    #[arg(long)]
    pub respect_gitignore: bool,
    /// Repository configuration (default: .coffer-scan.toml in the current
    /// directory or the nearest parent up to the repository root).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Skip files (and, for --history, a commit's additions to one file)
    /// larger than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Also find the exact values coffer stores under PREFIX, which ends
    /// with `/` (repeatable; alone, every secret the token may list), by the server's keyed
    /// fingerprints: needs `list`, never `read`, and no value is fetched.
    /// Findings name the secret's path and version (rule
    /// `coffer-known-value`).
    #[arg(long, value_name = "PREFIX", num_args = 0..=1, default_missing_value = "")]
    pub known: Vec<String>,
    /// For each stored value found, offer `coffer leak` (mark the version
    /// compromised, list its readers, rotate): asks on a terminal; without
    /// one, only with --yes. Text output only.
    #[arg(long, requires = "known", conflicts_with = "write_baseline")]
    pub respond: bool,
    /// With --respond: respond to every stored value found without asking.
    #[arg(long, requires = "respond")]
    pub yes: bool,
}

/// What a scan looked at, for the summary line.
#[derive(Default)]
struct Stats {
    files: AtomicU64,
    bytes: AtomicU64,
    skipped_large: AtomicU64,
    skipped_binary: AtomicU64,
    unreadable: AtomicU64,
}

/// Findings and counters shared by the workers.
struct Sink {
    findings: Mutex<Vec<Reported>>,
    stats: Stats,
}

impl Sink {
    fn add(&self, mut found: Vec<Reported>) {
        if !found.is_empty() {
            self.findings
                .lock()
                .expect("findings lock")
                .append(&mut found);
        }
    }
}

pub fn run(a: ScanArgs) -> anyhow::Result<Status> {
    run_with(a, None).map(|(status, _)| status)
}

/// [`run`] with an extra source of findings (`--known`'s stored values),
/// returning the findings it reported too (for `--respond`).
pub fn run_with(
    a: ScanArgs,
    matcher: Option<Arc<dyn coffer_scan::Matcher>>,
) -> anyhow::Result<(Status, Vec<Reported>)> {
    let format = if a.json { Format::Json } else { a.format };
    if a.respond && format != Format::Text {
        return Err(fail(
            Status::Usage,
            "--respond prints the responses after the report: use it with --format text",
        ));
    }
    let config = load_config(a.config.as_deref())?;
    let mut scanner = Scanner::new(config).map_err(|e| fail(Status::Invalid, e.to_string()))?;
    if let Some(m) = matcher {
        scanner.add_matcher(m);
    }
    let scanner = Arc::new(scanner);
    let baseline = match &a.baseline {
        Some(p) if !a.write_baseline => Some(read_baseline(p)?),
        _ => None,
    };
    let threads = a.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let sink = Arc::new(Sink {
        findings: Mutex::new(Vec::new()),
        stats: Stats::default(),
    });
    let progress = Progress::start(&sink);
    let outcome = if a.staged {
        scan_staged(&scanner, &sink, a.max_file_size, threads)
    } else if let Some(range) = &a.history {
        scan_history(&scanner, &sink, range, a.max_file_size, threads)
    } else {
        let paths = if a.paths.is_empty() {
            vec![OsString::from(".")]
        } else {
            a.paths.clone()
        };
        scan_paths(&scanner, &sink, &paths, &a, threads)
    };
    progress.stop();
    outcome?;

    let mut findings = std::mem::take(&mut *sink.findings.lock().expect("findings lock"));
    findings.sort_by(|x, y| {
        (&x.file, x.line, x.column, &x.rule).cmp(&(&y.file, y.line, y.column, &y.rule))
    });
    let stats = &sink.stats;
    let summary = format!(
        "{} files, {:.1} MB{}{}",
        stats.files.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        match stats.skipped_large.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(", {n} skipped as larger than {} bytes", a.max_file_size),
        },
        match stats.unreadable.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(", {n} unreadable"),
        },
    );

    if a.write_baseline {
        let path = a.baseline.as_ref().expect("clap: requires baseline");
        write_baseline(path, &findings)?;
        eprintln!(
            "coffer scan: wrote {} findings to the baseline {} ({summary})",
            findings.len(),
            report::escape(&path.to_string_lossy())
        );
        return Ok((Status::Ok, Vec::new()));
    }
    let before = findings.len();
    if let Some(b) = &baseline {
        findings.retain(|f| !b.contains_fingerprint(&f.fingerprint));
    }
    let baselined = before - findings.len();

    let out = match format {
        Format::Text => report::text(&findings),
        Format::Json => report::json(&findings),
        Format::Sarif => {
            let rules: Vec<(String, String)> = scanner
                .rules()
                .iter()
                .map(|r| (r.id.clone(), r.description.clone()))
                .collect();
            report::sarif(&findings, &rules, env!("CARGO_PKG_VERSION"))
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`coffer scan | head`) is not an error of the scan.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    let baselined = if baselined > 0 {
        format!(", {baselined} in the baseline")
    } else {
        String::new()
    };
    if findings.is_empty() {
        eprintln!("coffer scan: no secrets found ({summary}{baselined})");
        Ok((Status::Ok, findings))
    } else {
        eprintln!(
            "coffer scan: {} secret{} found ({summary}{baselined})\n\
             To allow one, put a `coffer:allow` comment on its line (or `coffer:allow-next-line` \
             on the line before), or accept the current findings with \
             `coffer scan --baseline {DEFAULT_BASELINE} --write-baseline`.",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" },
        );
        Ok((Status::Found, findings))
    }
}

/// The repository configuration: the given file, or `.coffer-scan.toml` in
/// the current directory or its nearest parent up to the repository root.
fn load_config(explicit: Option<&Path>) -> anyhow::Result<Config> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => find_config()?,
    };
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let shown = report::escape(&path.to_string_lossy());
    let text = read_config(&path, explicit.is_none()).map_err(|e| {
        fail(
            if explicit.is_some() {
                Status::NotFound
            } else {
                Status::Other
            },
            format!("cannot read {shown}: {e}"),
        )
    })?;
    Config::parse(&text).map_err(|e| {
        fail(
            Status::Invalid,
            format!("{}: {e}", report::escape(&path.to_string_lossy())),
        )
    })
}

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a configuration file. The one found in the repository is the
/// repository's to write, and a repository can be anyone's (a pull
/// request from a fork scanned in CI): it is never read through a symbolic
/// link (which could point at `/proc/self/environ` or a credentials file),
/// must be a regular file, and is at most 1 MiB.
fn read_config(path: &Path, found: bool) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if found {
        options.custom_flags(crate::settings::no_follow());
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

fn find_config() -> anyhow::Result<Option<PathBuf>> {
    let mut dir = std::env::current_dir()?;
    loop {
        let candidate = dir.join(coffer_scan::CONFIG_FILE);
        // A symbolic link counts as present, so that reading it is refused
        // rather than the scan going on without the repository's rules.
        if candidate.symlink_metadata().is_ok() {
            return Ok(Some(candidate));
        }
        if dir.join(".git").exists() || !dir.pop() {
            return Ok(None);
        }
    }
}

fn read_baseline(path: &Path) -> anyhow::Result<Baseline> {
    let shown = report::escape(&path.to_string_lossy());
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                Status::NotFound,
                format!("no baseline at {shown} (write one with --write-baseline)"),
            ));
        }
        Err(e) => return Err(fail(Status::Other, format!("cannot read {shown}: {e}"))),
    };
    Baseline::parse(&text).map_err(|e| fail(Status::Invalid, format!("{shown}: {e}")))
}

/// Writes the baseline beside its final name and renames it into place, so
/// a reader never sees half a file.
fn write_baseline(path: &Path, findings: &[Reported]) -> anyhow::Result<()> {
    let text = coffer_scan::baseline::write_reported(findings);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(
                Status::Other,
                format!(
                    "cannot write {}: {e}",
                    report::escape(&path.to_string_lossy())
                ),
            )
        })
}

/// A path as shown in reports and matched against allowlists: lossy UTF-8,
/// `/`-separated, without a leading `./`.
fn shown_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let s = s.strip_prefix("./").unwrap_or(&s);
    s.to_string()
}

fn scan_bytes(scanner: &Scanner, sink: &Sink, file: &str, content: &[u8]) {
    sink.stats.files.fetch_add(1, Ordering::Relaxed);
    sink.stats
        .bytes
        .fetch_add(content.len() as u64, Ordering::Relaxed);
    if coffer_scan::is_binary(content) {
        sink.stats.skipped_binary.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let found = scanner.scan(file, content);
    sink.add(found.iter().map(|f| Reported::new(file, f)).collect());
}

fn scan_paths(
    scanner: &Arc<Scanner>,
    sink: &Arc<Sink>,
    paths: &[OsString],
    a: &ScanArgs,
    threads: usize,
) -> anyhow::Result<()> {
    let mut roots = Vec::new();
    for p in paths {
        if p == "-" {
            let content = read_capped(std::io::stdin().lock(), a.max_file_size)
                .map_err(|e| fail(Status::Other, format!("cannot read standard input: {e}")))?;
            let Some(content) = content else {
                return Err(fail(
                    Status::Invalid,
                    format!(
                        "standard input is larger than --max-file-size ({} bytes)",
                        a.max_file_size
                    ),
                ));
            };
            scan_bytes(scanner, sink, "-", &content);
            continue;
        }
        let path = PathBuf::from(p);
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(fail(
                Status::NotFound,
                format!(
                    "no such file or directory: {}",
                    report::escape(&path.to_string_lossy())
                ),
            ));
        }
        roots.push(path);
    }
    let Some((first, rest)) = roots.split_first() else {
        return Ok(());
    };
    let mut builder = ignore::WalkBuilder::new(first);
    for r in rest {
        builder.add(r);
    }
    // Hidden files (.env) are scanned; gitignore only when asked. Symlinks
    // are not followed: a link out of the tree is not the tree's content,
    // and a link inside it points at a file scanned at its own path (and
    // nothing can loop).
    builder
        .hidden(false)
        .ignore(false)
        .parents(a.respect_gitignore)
        .git_ignore(a.respect_gitignore)
        .git_global(a.respect_gitignore)
        .git_exclude(a.respect_gitignore)
        .require_git(false)
        .follow_links(false)
        .threads(threads)
        .filter_entry(|e| e.file_name() != ".git");
    let max = a.max_file_size;
    builder.build_parallel().run(|| {
        let scanner = Arc::clone(scanner);
        let sink = Arc::clone(sink);
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(_) => {
                    sink.stats.unreadable.fetch_add(1, Ordering::Relaxed);
                    return ignore::WalkState::Continue;
                }
            };
            if entry.file_type().is_some_and(|t| t.is_file()) {
                match read_file(entry.path(), max) {
                    Ok(Some(content)) => {
                        scan_bytes(&scanner, &sink, &shown_path(entry.path()), &content)
                    }
                    Ok(None) => {
                        sink.stats.skipped_large.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        sink.stats.unreadable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            ignore::WalkState::Continue
        })
    });
    Ok(())
}

/// A regular file's bytes, opened without following a symlink; `None` when
/// it is larger than `max`.
fn read_file(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        // Swapped for a FIFO or device after the walk saw it: never block on one.
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > max {
        return Ok(None);
    }
    read_capped(file, max)
}

/// Everything `r` yields, or `None` past `max` bytes.
fn read_capped(r: impl Read, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(max + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= max).then_some(buf))
}

/// Runs `git` with fixed options that make its output parseable whatever
/// the user's configuration says.
fn git() -> Command {
    let mut c = Command::new("git");
    c.args(["-c", "core.quotePath=true", "-c", "diff.noprefix=false"])
        .stdin(Stdio::null());
    c
}

fn git_output(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = git()
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| fail(Status::Other, format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(fail(
            Status::Other,
            format!(
                "git {}: {}",
                args.first().unwrap_or(&""),
                report::escape(msg.trim())
            ),
        ));
    }
    Ok(out.stdout)
}

/// A pool of worker threads fed through a bounded queue, so a producer
/// reading git's output never holds more than a few jobs in memory.
fn with_pool<J: Send + 'static>(
    threads: usize,
    work: impl Fn(J) + Send + Sync + 'static,
    produce: impl FnOnce(&mpsc::SyncSender<J>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::sync_channel::<J>(threads * 2);
    let rx = Arc::new(Mutex::new(rx));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let rx = Arc::clone(&rx);
            let work = Arc::clone(&work);
            std::thread::spawn(move || {
                loop {
                    let job = rx.lock().expect("queue lock").recv();
                    match job {
                        Ok(j) => work(j),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let result = produce(&tx);
    drop(tx);
    for h in handles {
        if h.join().is_err() {
            return Err(fail(Status::Other, "a scan worker failed"));
        }
    }
    result
}

fn scan_staged(
    scanner: &Arc<Scanner>,
    sink: &Arc<Sink>,
    max: u64,
    threads: usize,
) -> anyhow::Result<()> {
    let raw = git_output(&[
        "diff",
        "--cached",
        "--raw",
        "-z",
        "--no-renames",
        "--diff-filter=ACMRT",
        "--no-ext-diff",
    ])?;
    // Records: ":<mode> <mode> <oid> <oid> <status>\0<path>\0".
    let mut jobs = Vec::new();
    let mut parts = raw.split(|&b| b == 0);
    while let Some(meta) = parts.next() {
        if meta.is_empty() {
            continue;
        }
        let Some(path) = parts.next() else { break };
        let fields: Vec<&[u8]> = meta.split(|&b| b == b' ').collect();
        let (Some(mode), Some(oid)) = (fields.get(1), fields.get(3)) else {
            continue;
        };
        // Regular files only: not symlinks (120000) nor submodules (160000).
        if !(mode.starts_with(b"100")) {
            continue;
        }
        let oid = String::from_utf8_lossy(oid).into_owned();
        if !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        jobs.push((String::from_utf8_lossy(path).into_owned(), oid));
    }
    let scanner = Arc::clone(scanner);
    let worker_sink = Arc::clone(sink);
    with_pool(
        threads,
        move |(path, oid): (String, String)| match blob(&oid, max) {
            Ok(Some(content)) => scan_bytes(&scanner, &worker_sink, &path, &content),
            Ok(None) => {
                worker_sink
                    .stats
                    .skipped_large
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                worker_sink.stats.unreadable.fetch_add(1, Ordering::Relaxed);
            }
        },
        |tx| {
            for j in jobs {
                if tx.send(j).is_err() {
                    break;
                }
            }
            Ok(())
        },
    )
}

/// A blob's bytes from the object store, or `None` if it is larger than `max`.
fn blob(oid: &str, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let size = git_output(&["cat-file", "-s", oid])?;
    let size: u64 = String::from_utf8_lossy(&size).trim().parse()?;
    if size > max {
        return Ok(None);
    }
    Ok(Some(git_output(&["cat-file", "blob", oid])?))
}

/// One file's additions in one commit.
struct Added {
    commit: Arc<Commit>,
    path: String,
    content: Vec<u8>,
    /// The file line of each line of `content`.
    lines: Vec<usize>,
    truncated: bool,
}

fn scan_history(
    scanner: &Arc<Scanner>,
    sink: &Arc<Sink>,
    range: &str,
    max: u64,
    threads: usize,
) -> anyhow::Result<()> {
    if range.starts_with('-') {
        return Err(fail(
            Status::Usage,
            "--history takes a revision range, not an option",
        ));
    }
    let mut cmd = git();
    cmd.args([
        "log",
        "-p",
        "-U0",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "--format=%x01commit %H%x1f%an%x1f%aI",
    ]);
    if !range.is_empty() {
        cmd.arg(range);
    }
    cmd.arg("--");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(Status::Other, format!("cannot run git: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut s);
        s
    });
    let scanner = Arc::clone(scanner);
    let worker_sink = Arc::clone(sink);
    let result = with_pool(
        threads,
        move |a: Added| {
            worker_sink.stats.files.fetch_add(1, Ordering::Relaxed);
            worker_sink
                .stats
                .bytes
                .fetch_add(a.content.len() as u64, Ordering::Relaxed);
            if a.truncated {
                worker_sink
                    .stats
                    .skipped_large
                    .fetch_add(1, Ordering::Relaxed);
            }
            let found = scanner.scan(&a.path, &a.content);
            let reported = found
                .iter()
                .map(|f| {
                    let mut r = Reported::new(&a.path, f);
                    r.line = a.lines.get(f.line - 1).copied().unwrap_or(f.line);
                    r.commit = Some((*a.commit).clone());
                    r
                })
                .collect();
            worker_sink.add(reported);
        },
        |tx| parse_log(BufReader::with_capacity(1 << 16, stdout), max, tx),
    );
    let status = child.wait()?;
    let err = err_reader.join().unwrap_or_default();
    result?;
    if !status.success() {
        return Err(fail(
            Status::Other,
            format!(
                "git log: {}",
                report::escape(String::from_utf8_lossy(&err).trim())
            ),
        ));
    }
    Ok(())
}

/// Reads `git log -p -U0` output and sends each file's added lines per
/// commit. Hunk headers give how many lines follow, so a line of content
/// is never taken for a header whatever it holds.
fn parse_log(mut r: impl BufRead, max: u64, tx: &mpsc::SyncSender<Added>) -> anyhow::Result<()> {
    let mut commit: Option<Arc<Commit>> = None;
    let mut current: Option<Added> = None;
    let mut minus = 0usize;
    let mut plus = 0usize;
    let mut next_line = 0usize;
    let mut line = Vec::new();
    let flush = |current: &mut Option<Added>| {
        if let Some(a) = current.take()
            && !a.content.is_empty()
        {
            let _ = tx.send(a);
        }
    };
    // Lines longer than this are cut when read (the rest is discarded): a
    // history with a gigabyte-long line costs no gigabyte of memory.
    let line_cap = usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1);
    loop {
        line.clear();
        if !read_line_capped(&mut r, &mut line, line_cap)? {
            break;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        if plus > 0 || minus > 0 {
            match l.first() {
                Some(b'+') if plus > 0 => {
                    plus -= 1;
                    if let Some(a) = current.as_mut() {
                        if a.content.len() as u64 + l.len() as u64 > max {
                            a.truncated = true;
                        } else if !a.truncated {
                            a.content.extend_from_slice(&l[1..]);
                            a.content.push(b'\n');
                            a.lines.push(next_line);
                        }
                    }
                    next_line += 1;
                    continue;
                }
                Some(b'-') if minus > 0 => {
                    minus -= 1;
                    continue;
                }
                Some(b'\\') => continue,
                _ => {
                    // Malformed: fall through and treat as a header.
                    plus = 0;
                    minus = 0;
                }
            }
        }
        if let Some(rest) = l.strip_prefix(b"\x01commit ") {
            flush(&mut current);
            let text = String::from_utf8_lossy(rest);
            let fields: Vec<&str> = text.split('\x1f').collect();
            let hash = fields.first().copied().unwrap_or_default();
            let date = if fields.len() >= 3 {
                fields[fields.len() - 1]
            } else {
                ""
            };
            let author = if fields.len() >= 3 {
                fields[1..fields.len() - 1].join("\u{1f}")
            } else {
                String::new()
            };
            commit = Some(Arc::new(Commit {
                commit: hash.to_string(),
                author,
                date: date.to_string(),
            }));
        } else if l.starts_with(b"diff --git ") {
            flush(&mut current);
        } else if let Some(p) = l.strip_prefix(b"+++ ") {
            flush(&mut current);
            if let (Some(path), Some(c)) = (diff_path(p), &commit) {
                current = Some(Added {
                    commit: Arc::clone(c),
                    path,
                    content: Vec::new(),
                    lines: Vec::new(),
                    truncated: false,
                });
            }
        } else if l.starts_with(b"@@ ") {
            let (m, p, start) = parse_hunk(l)
                .ok_or_else(|| fail(Status::Other, "git log: unexpected hunk header"))?;
            minus = m;
            plus = p;
            next_line = start;
        }
    }
    flush(&mut current);
    Ok(())
}

/// Reads one line (with its newline) into `buf`, keeping at most `cap`
/// bytes of it; false at end of input.
fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<bool> {
    let mut any = false;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any);
        }
        any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        r.consume(n);
        if done {
            return Ok(true);
        }
    }
}

/// `@@ -a[,b] +c[,d] @@` to (b, d, c).
fn parse_hunk(l: &[u8]) -> Option<(usize, usize, usize)> {
    let text = std::str::from_utf8(l).ok()?;
    let mut it = text.split(' ');
    it.next()?;
    let old = it.next()?.strip_prefix('-')?;
    let new = it.next()?.strip_prefix('+')?;
    let count = |s: &str| -> Option<(usize, usize)> {
        match s.split_once(',') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => Some((s.parse().ok()?, 1)),
        }
    };
    let (_, b) = count(old)?;
    let (c, d) = count(new)?;
    Some((b, d, c))
}

/// The path of a `+++ b/PATH` line (C-quoted when it holds unusual bytes),
/// or `None` for `/dev/null`.
fn diff_path(p: &[u8]) -> Option<String> {
    let raw = if p.first() == Some(&b'"') {
        unquote_c(p)?
    } else {
        p.to_vec()
    };
    let path = raw.strip_prefix(b"b/")?;
    Some(String::from_utf8_lossy(path).into_owned())
}

/// Undoes git's C-style quoting of a path: `"a\nb\303\251"`.
fn unquote_c(q: &[u8]) -> Option<Vec<u8>> {
    let inner = q.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = *inner.get(i + 1)?;
        i += 2;
        out.push(match e {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'"' => b'"',
            b'\\' => b'\\',
            b'0'..=b'7' => {
                let digits = inner.get(i - 1..i + 2)?;
                i += 2;
                let s = std::str::from_utf8(digits).ok()?;
                u8::from_str_radix(s, 8).ok()?
            }
            _ => return None,
        });
    }
    Some(out)
}

/// A progress line on stderr, only when stderr is a terminal.
struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(sink: &Arc<Sink>) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { stop, handle: None };
        }
        let sink = Arc::clone(sink);
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut shown = false;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(150));
                let files = sink.stats.files.load(Ordering::Relaxed);
                let mb = sink.stats.bytes.load(Ordering::Relaxed) as f64 / 1e6;
                let found = sink.findings.lock().map(|f| f.len()).unwrap_or(0);
                eprint!("\r\x1b[2Kscanning: {files} files, {mb:.1} MB, {found} findings");
                shown = true;
            }
            if shown {
                eprint!("\r\x1b[2K");
            }
        });
        Progress {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_git_paths() {
        assert_eq!(unquote_c(br#""a\nb""#).unwrap(), b"a\nb");
        assert_eq!(unquote_c(br#""caf\303\251""#).unwrap(), "café".as_bytes());
        assert_eq!(unquote_c(br#""x\\y\"z""#).unwrap(), br#"x\y"z"#);
        assert_eq!(unquote_c(br#""bad\q""#), None);
        assert_eq!(unquote_c(br#""trailing\""#), None);
    }

    #[test]
    fn hunk_headers() {
        assert_eq!(parse_hunk(b"@@ -0,0 +1,3 @@"), Some((0, 3, 1)));
        assert_eq!(parse_hunk(b"@@ -5 +7 @@ fn x"), Some((1, 1, 7)));
        assert_eq!(parse_hunk(b"@@ garbage"), None);
    }

    #[test]
    fn capped_lines_discard_the_rest() {
        let data = b"0123456789\nab\n";
        let mut r = BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        assert!(read_line_capped(&mut r, &mut buf, 5).unwrap());
        assert_eq!(buf, b"01234");
        buf.clear();
        assert!(read_line_capped(&mut r, &mut buf, 5).unwrap());
        assert_eq!(buf, b"ab\n");
        buf.clear();
        assert!(!read_line_capped(&mut r, &mut buf, 5).unwrap());
    }
}
