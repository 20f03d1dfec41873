//! `coffer server`: wiring the store, the core and the HTTP server together,
//! dev-mode bootstrap, logging, and shutdown on SIGINT/SIGTERM.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use coffer_core::{Coffer, CoreOptions};
use coffer_crypto::SecretString;
use coffer_server::{AppState, ServerConfig};
use coffer_store::{PostgresOptions, PostgresStore, SqliteStore, Storage};

use crate::cli::ServerArgs;
use crate::exit::{Status, fail};
use crate::settings;

const DB_FILE: &str = "coffer.db";
const LOCK_FILE: &str = "coffer.lock";
const DEV_UNSEAL_KEY: &str = "unseal-key";
const DEV_ROOT_TOKEN: &str = "root-token";

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<Status> {
    let config = if args.dev {
        dev_config(&args)?
    } else {
        let path = args
            .config
            .as_deref()
            .expect("clap requires --config without --dev");
        let mut c = ServerConfig::load(path).map_err(|e| fail(Status::Usage, e.to_string()))?;
        if let Some(l) = args.listen {
            c.listen = l;
        }
        if let Some(d) = &args.data_dir {
            c.data_dir = d.clone();
        }
        c
    };
    let mut config = config;
    if let Some(url) = &args.storage {
        if coffer_store::postgres::url_has_password(url) {
            eprintln!(
                "warning: --storage carries a password, which other users of this machine can \
                 see on the command line; use COFFER_STORAGE_PASSWORD or the config file"
            );
        }
        config.storage.url = Some(url.clone());
        config
            .storage
            .validate()
            .map_err(|e| fail(Status::Usage, format!("--storage: {e}")))?;
    }
    if !args.audit_file.is_empty() {
        config.audit.files = Some(args.audit_file.clone());
    }
    config
        .audit
        .sockets
        .extend(args.audit_socket.iter().cloned());
    config.audit.stdout |= args.audit_stdout;
    if let Some(secs) = args.lifecycle_interval {
        config.lifecycle_interval_secs = secs;
    }
    init_logging(&config.log_level, &config.log_format);
    let webhook_key = crate::webhook::signing_key(config.audit.webhook_secret_file.as_deref())
        .map_err(|e| fail(Status::Usage, format!("{e:#}")))?;
    if webhook_key.is_none() && !config.audit.webhooks.is_empty() {
        tracing::warn!(
            "alerts go to the webhooks unsigned: set audit.webhook_secret_file (or COFFER_WEBHOOK_SECRET) so receivers can tell them from forgeries"
        );
    }
    if args.dev && !config.listen.ip().is_loopback() {
        return Err(fail(
            Status::Usage,
            format!(
                "dev mode listens on loopback only; {} is not a loopback address",
                config.listen
            ),
        ));
    }

    settings::create_private_dir(&config.data_dir)?;
    let (store, _lock) = open_store(&config.storage, &config.data_dir).await?;
    let coffer = Arc::new(
        Coffer::open(
            store,
            CoreOptions {
                max_value_bytes: config.max_value_bytes,
                key_max_encryptions: config.key_max_encryptions,
                ..CoreOptions::default()
            },
        )
        .await?,
    );
    if args.dev {
        dev_bootstrap(&coffer, &config.data_dir).await?;
    }

    let sinks = config.audit.sinks(&config.data_dir);
    let audit_files: Vec<PathBuf> = sinks
        .iter()
        .filter_map(|s| match s {
            coffer_audit::SinkSpec::File(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let key_source = {
        let coffer = coffer.clone();
        Arc::new(move || coffer.audit_key())
    };
    let (auditor, alerts) = coffer_audit::Auditor::start(coffer_audit::AuditorConfig {
        sinks,
        fsync: config.audit.fsync_policy(),
        rules: config.audit.alerts.clone(),
        key: key_source,
        rotation: config.audit.rotation(),
    })
    .map_err(|e| fail(Status::Other, format!("cannot start the audit log: {e}")))?;
    let auditor = Arc::new(auditor);

    let bound = coffer_server::bind(config.listen, config.tls.as_ref()).await?;
    let scheme = if bound.is_tls() { "https" } else { "http" };
    let addr = format!("{scheme}://{}", bound.local_addr());
    if args.dev {
        print_dev_banner(&addr, &config.data_dir, &audit_files);
    } else {
        let s = coffer.status();
        println!("Coffer listening on {addr}");
        for f in &audit_files {
            println!("Audit log: {}", f.display());
        }
        tracing::info!(%addr, storage = s.storage, initialized = s.initialized, sealed = s.sealed, "coffer listening");
        if !s.initialized {
            eprintln!("coffer is not initialized: run `COFFER_ADDR={addr} coffer operator init`");
        } else if s.sealed {
            eprintln!(
                "coffer is sealed: run `COFFER_ADDR={addr} coffer operator unseal` with {} key(s)",
                s.threshold
            );
        }
    }

    let router_options = config
        .router_options(&bound)
        .map_err(|e| fail(Status::Usage, e))?;
    let app = coffer_server::router(
        AppState {
            coffer: coffer.clone(),
            auditor: auditor.clone(),
        },
        router_options,
    );
    let webhooks = crate::webhook::start(alerts, config.audit.webhooks.clone(), webhook_key);
    let (leading, _) = tokio::sync::watch::channel(false);
    let leader = tokio::spawn(lead_periodically(coffer.clone(), leading.clone()));
    let sweeper = tokio::spawn(sweep_periodically(
        coffer.clone(),
        leading.subscribe(),
        Duration::from_secs(config.sweep_interval_secs.max(1)),
    ));
    let hangups = tokio::spawn(rotate_on_hangup(auditor.clone()));
    let scheduler = tokio::spawn(lifecycle_periodically(
        coffer.clone(),
        auditor.clone(),
        leading.subscribe(),
        Duration::from_secs(config.lifecycle_interval_secs.max(1)),
    ));
    coffer_server::serve(bound, app, shutdown_signal(), config.serve_options()).await;
    sweeper.abort();
    hangups.abort();
    scheduler.abort();
    leader.abort();
    // Write what is queued, the head files, and sync.
    let closing = auditor.clone();
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    // The last alerts (the closing ones among them) and those waiting for a
    // retry get one more try.
    webhooks.finish(WEBHOOKS_AT_STOP).await;
    coffer
        .close()
        .await
        .context("flushing the store on shutdown")?;
    tracing::info!("coffer stopped");
    Ok(Status::Ok)
}

/// Opens the configured store. SQLite also takes the data directory's lock,
/// held for the life of the process: a second server on the same file would
/// serve from its own, stale cache. PostgreSQL is shared by design.
pub(crate) async fn open_store(
    storage: &coffer_server::StorageConfig,
    data_dir: &Path,
) -> anyhow::Result<(Arc<dyn Storage>, Option<std::fs::File>)> {
    if storage.is_postgres() {
        let url = storage.url.clone().unwrap_or_default();
        let password = match (
            &storage.password_file,
            std::env::var("COFFER_STORAGE_PASSWORD"),
        ) {
            (_, Ok(p)) if !p.is_empty() => Some(p),
            (Some(file), _) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| {
                        format!("cannot read storage.password_file {}", file.display())
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            _ => None,
        };
        let shown = coffer_store::postgres::redact_url(&url);
        let store = PostgresStore::connect(&PostgresOptions {
            url,
            password,
            pool_size: storage.pool_size.unwrap_or(16),
        })
        .await
        .with_context(|| format!("cannot open the store at {shown}"))?;
        tracing::info!(storage = %shown, "using PostgreSQL storage");
        return Ok((Arc::new(store), None));
    }
    let lock = lock_data_dir(data_dir)?;
    let db = data_dir.join(DB_FILE);
    let store = SqliteStore::open(&db)
        .with_context(|| format!("cannot open the store at {}", db.display()))?;
    Ok((Arc::new(store), Some(lock)))
}

/// How often a node checks (or takes) the role of running background jobs.
const LEAD_CHECK: Duration = Duration::from_secs(1);

/// How long a stopping server waits for its last webhook deliveries.
const WEBHOOKS_AT_STOP: Duration = Duration::from_secs(5);

/// Keeps `leading` true while this node holds the leader role; with
/// several nodes on one PostgreSQL exactly one unsealed node does, and
/// another takes the role within about a second of the holder's death or
/// sealing.
async fn lead_periodically(coffer: Arc<Coffer>, leading: tokio::sync::watch::Sender<bool>) {
    let mut tick = tokio::time::interval(LEAD_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Only an unsealed node can run the jobs; a sealed one leaves the
        // role to a node that can.
        if !coffer.is_unsealed() {
            coffer.store().resign().await;
            leading.send_if_modified(|was| std::mem::replace(was, false));
            continue;
        }
        let now = match coffer.store().lead().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the leader role");
                false
            }
        };
        leading.send_if_modified(|was| {
            let changed = *was != now;
            *was = now;
            changed
        });
    }
}

/// Waits for the next tick at which this node leads; returns whether it has
/// just become the leader.
async fn next_leading_tick(
    tick: &mut tokio::time::Interval,
    leading: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if *leading.borrow() {
                    return false;
                }
            }
            changed = leading.changed() => {
                if changed.is_err() {
                    // The leader task is gone (shutting down).
                    std::future::pending::<()>().await;
                }
                if *leading.borrow_and_update() {
                    tick.reset();
                    return true;
                }
            }
        }
    }
}

/// Deletes expired access records every `every`, while unsealed, on the
/// leader only.
async fn sweep_periodically(
    coffer: Arc<Coffer>,
    mut leading: tokio::sync::watch::Receiver<bool>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        next_leading_tick(&mut tick, &mut leading).await;
        if let Err(e) = coffer.store().housekeeping().await {
            tracing::warn!(error = %e, "storage housekeeping failed");
        }
        if !coffer.is_unsealed() {
            continue;
        }
        if let Err(e) = coffer.sync().await {
            tracing::warn!(error = %e, "cannot apply other nodes' changes; sweep skipped");
            continue;
        }
        match coffer.sweep_expired().await {
            Ok(r) => tracing::debug!(
                grants = r.grants,
                invites = r.invites,
                login_failures = r.login_failures,
                "expired access records swept"
            ),
            Err(e) => tracing::warn!(error = %e, "sweeping expired access records failed"),
        }
    }
}

/// Runs the lifecycle scheduler every `every`, while unsealed and while the
/// audit log works (a rotation nobody can record does not happen). Each
/// scheduled rotation, each rotation that is due but has no generator, and
/// each expiry within a week (or past) is an alert record (delivered to the
/// webhooks too; never with a value); due and expiry alerts are raised once
/// per secret and date by this process.
async fn lifecycle_periodically(
    coffer: Arc<Coffer>,
    auditor: Arc<coffer_audit::Auditor>,
    mut leading: tokio::sync::watch::Receiver<bool>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut told = std::collections::HashSet::new();
    loop {
        // A node that has just become the leader runs a pass at once, so
        // a takeover does not wait a whole interval.
        next_leading_tick(&mut tick, &mut leading).await;
        if !coffer.is_unsealed() || !auditor.healthy() {
            continue;
        }
        if let Err(e) = coffer.sync().await {
            tracing::warn!(error = %e, "cannot apply other nodes' changes; lifecycle pass skipped");
            continue;
        }
        tracing::debug!("lifecycle pass");
        let report = match coffer.lifecycle_tick().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle pass failed");
                continue;
            }
        };
        let mut alerts = Vec::new();
        for (path, version, until) in report.rotated {
            let grace = until.map_or(String::new(), |t| {
                format!(
                    "; the previous version is served until {}",
                    coffer_core::duration::format_time_ms(t)
                )
            });
            alerts.push(lifecycle_alert(
                "secret_rotated",
                &path,
                Some(version),
                format!("scheduled rotation of {path}: version {version} is current{grace}"),
            ));
        }
        for (path, due) in report.due_by_hand {
            if told.insert((path.clone(), "due", due)) {
                alerts.push(lifecycle_alert(
                    "rotation_due",
                    &path,
                    None,
                    format!(
                        "{path} was due for rotation at {} and no generator applies: rotate it by hand",
                        coffer_core::duration::format_time_ms(due)
                    ),
                ));
            }
        }
        for (path, at) in report.expiring {
            let expired = at <= coffer_core::now_ms();
            if told.insert((
                path.clone(),
                if expired { "expired" } else { "expiring" },
                at,
            )) {
                let when = coffer_core::duration::format_time_ms(at);
                alerts.push(lifecycle_alert(
                    if expired {
                        "secret_expired"
                    } else {
                        "secret_expiring"
                    },
                    &path,
                    None,
                    if expired {
                        format!("{path} expired at {when}; reads are refused")
                    } else {
                        format!("{path} expires at {when}")
                    },
                ));
            }
        }
        for (id, _) in report.keys_added {
            alerts.push(lifecycle_alert(
                "keyring_rotated",
                "sys/keyring",
                None,
                format!(
                    "keyring key {id} was added: the previous key had sealed its share of values; \
                     older versions move to it in the background"
                ),
            ));
        }
        if report.rewrapped > 0 {
            tracing::info!(
                versions = report.rewrapped,
                "versions moved to the active keyring key"
            );
        }
        for (path, why) in report.failed {
            alerts.push(lifecycle_alert(
                "rotation_failed",
                &path,
                None,
                format!("scheduled rotation of {path} failed: {why}"),
            ));
        }
        for a in alerts {
            if !auditor.record(a).await {
                tracing::error!("a lifecycle alert could not be recorded");
            }
        }
    }
}

fn lifecycle_alert(
    rule: &str,
    path: &str,
    version: Option<u64>,
    message: String,
) -> coffer_audit::Record {
    tracing::warn!(target: "coffer::alert", alert = rule, path, "{message}");
    coffer_audit::Record {
        time: coffer_audit::now_rfc3339(),
        kind: coffer_audit::Kind::Alert,
        actor: Some(coffer_audit::Actor {
            kind: "system".into(),
            name: coffer_core::rotation::SCHEDULER.into(),
            accessor: String::new(),
        }),
        op: Some("lifecycle.scheduler".into()),
        path: Some(path.to_string()),
        version,
        outcome: Some(coffer_audit::Outcome::Ok),
        alert: Some(coffer_audit::AlertInfo {
            rule: rule.to_string(),
            subject: path.to_string(),
            count: 1,
            window_secs: 0,
        }),
        message: Some(message),
        ..coffer_audit::Record::default()
    }
}

/// Takes an exclusive lock on `DIR/coffer.lock`, or explains who holds it.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A link planted at the lock's name is refused, not followed.
        .custom_flags(settings::no_follow())
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(fail(
            Status::Other,
            format!(
                "another coffer server is already using {}; stop it first",
                dir.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn dev_config(args: &ServerArgs) -> anyhow::Result<ServerConfig> {
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => settings::default_dev_dir()
            .ok_or_else(|| fail(Status::Usage, "HOME is not set; pass --data-dir"))?,
    };
    let mut c = ServerConfig::parse(&format!("data_dir = {:?}", data_dir.display().to_string()))
        .map_err(|e| fail(Status::Usage, e))?;
    if let Some(l) = args.listen {
        c.listen = l;
    }
    Ok(c)
}

/// Initialises a dev data directory on first start (one unseal key, kept in
/// the directory) and unseals it on every start.
async fn dev_bootstrap(coffer: &Coffer, dir: &Path) -> anyhow::Result<()> {
    let key_file = dir.join(DEV_UNSEAL_KEY);
    if !coffer.status().initialized {
        let out = coffer.init(1, 1).await?;
        settings::write_private(&key_file, out.unseal_keys[0].expose_secret().as_bytes())?;
        settings::write_private(
            &dir.join(DEV_ROOT_TOKEN),
            out.root_token.expose_secret().as_bytes(),
        )?;
        tracing::info!(dir = %dir.display(), "initialized a new dev data directory");
    }
    let key = std::fs::read_to_string(&key_file)
        .map(SecretString::new)
        .map_err(|e| {
            fail(
                Status::Other,
                format!(
                    "{} holds a coffer but its dev unseal key {} cannot be read ({e}); \
                 it was not created by `coffer server --dev`, or the key file was removed",
                    dir.display(),
                    key_file.display()
                ),
            )
        })?;
    coffer.unseal(key.expose_secret().trim()).await?;
    Ok(())
}

fn print_dev_banner(addr: &str, dir: &Path, audit: &[PathBuf]) {
    let token = dir.join(DEV_ROOT_TOKEN);
    let exe = std::env::current_exe().ok();
    let on_path = exe.as_deref().is_some_and(is_on_path);
    let coffer = if on_path {
        "coffer".to_string()
    } else {
        exe.map_or_else(|| "coffer".to_string(), |p| p.display().to_string())
    };
    // Formatted first and written whole, so whoever reads the output (a
    // script waiting for the address, say) never sees half a banner.
    let banner = format!(
        "\nCoffer dev server is running.\n\n\
         \x20 Address:     {addr}\n\
         \x20 Data:        {dir}  (SQLite; values encrypted at rest)\n\
         \x20 Root token:  {token}  (readable by you only)\n\
         \x20 Audit log:   {audit}\n\n\
         Dev mode keeps its unseal key in the data directory so it can unseal itself on\n\
         every start. Use `coffer server --config FILE` for anything that matters.\n\n\
         Next steps, in another terminal:\n\n\
         \x20 export COFFER_ADDR={addr}\n\
         \x20 {coffer} login < {token}\n\
         \x20 {coffer} set myapp/dev/API_KEY        # type the value; it is not echoed\n\
         \x20 {coffer} get myapp/dev/API_KEY\n\
         \x20 {coffer} ls myapp -r\n\n\
         Press Ctrl-C to stop.\n",
        dir = dir.display(),
        token = token.display(),
        audit = if audit.is_empty() {
            "sockets/stdout only".to_string()
        } else {
            audit
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
}

fn is_on_path(exe: &Path) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    std::env::split_paths(&path)
        .any(|d: PathBuf| std::fs::canonicalize(d.join("coffer")).is_ok_and(|p| p == exe))
}

fn init_logging(level: &str, format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("COFFER_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGHUP rotates the audit log files, as `coffer audit rotate` does (for
/// logrotate's `postrotate`, or systemd's `ExecReload`).
async fn rotate_on_hangup(auditor: Arc<coffer_audit::Auditor>) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP (audit log rotation)");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let a = auditor.clone();
            match tokio::task::spawn_blocking(move || a.rotate()).await {
                Ok(Ok(report)) => {
                    for r in &report.rotated {
                        tracing::info!(file = %r.log.display(), to = %r.to.display(), records = r.records, "SIGHUP: audit log file rotated");
                    }
                    for (file, reason) in &report.failed {
                        tracing::error!(file = %file.display(), %reason, "SIGHUP: audit log file not rotated");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "SIGHUP: audit log not rotated"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: audit log rotation failed"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = auditor;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}
