//! The command line, declared with clap. Every command has examples in its
//! help. No flag ever takes a token, and the one flag that takes a value
//! (`set --value`) warns.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_STATUSES: &str = "\
Exit status:
  0 success            4 permission denied    7 validation failed
  1 other error        5 sealed               8 conflict
  2 usage error        6 unreachable          9 secrets found (scan)
  3 not found

Environment:
  COFFER_ADDR    server address (default http://127.0.0.1:8270)
  COFFER_TOKEN   token (otherwise the one saved by `coffer login`)
  COFFER_CACERT  CA certificate file (PEM) to trust for https";

#[derive(Debug, Parser)]
#[command(
    name = "coffer",
    version,
    about = "Coffer: a self-hosted secrets manager. Server, operator tool and client in one binary.",
    after_help = EXIT_STATUSES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether this invocation runs the server.
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Server(_))
    }
}

#[derive(Debug, Args)]
pub struct Global {
    /// Server address.
    #[arg(long, global = true, env = "COFFER_ADDR", value_name = "URL")]
    pub addr: Option<String>,
    /// CA certificate (PEM) to trust for an https server.
    #[arg(long, global = true, env = "COFFER_CACERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    #[command(after_help = "Examples:
  coffer server --dev                        # local development: embedded store, auto-unsealed
  coffer server --dev --data-dir ./dev-data --listen 127.0.0.1:9000
  coffer server --config /etc/coffer/coffer.toml
  coffer server --dev --audit-file /var/log/coffer/audit.log --audit-socket tcp://127.0.0.1:5170")]
    Server(ServerArgs),

    /// Seal status of the server.
    #[command(after_help = "Exits 0 when unsealed, 5 when sealed or not initialized.

Examples:
  coffer status
  coffer status --json | jq .sealed")]
    Status(JsonFlag),

    /// Operator commands: init, unseal, seal, rotate, keyring, status, backup, restore.
    #[command(subcommand)]
    Operator(OperatorCommand),

    /// Store a new version of a secret. The value is read from stdin, or
    /// prompted for (without echo) on a terminal.
    #[command(after_help = "Examples:
  coffer set myapp/dev/API_KEY                       # prompts twice, no echo
  printf '%s' \"$VALUE\" | coffer set myapp/dev/API_KEY
  coffer set myapp/dev/TLS_KEY < key.pem --raw        # keep trailing newline
  echo '{\"user\":\"app\",\"password\":\"pw\"}' | coffer set myapp/dev/db --fields
  coffer set myapp/dev/API_KEY --cas 3 < new-value    # only if version 3 is current
  coffer set myapp/prod/SESSION_KEY --generate         # 32 random bytes, base64; never printed
  coffer set myapp/prod/DB_PASSWORD --generate alnum:24

A value typed by hand is checked for strength: where a lifecycle rule sets
min_bits it must reach it (or is refused, exit 7); elsewhere a weak value is
stored with a warning.")]
    Set(SetArgs),

    /// Print a secret's value (alone, on stdout).
    #[command(after_help = "Examples:
  coffer get myapp/dev/API_KEY
  coffer get myapp/dev/API_KEY --version 2
  coffer get myapp/prod/JWT_KEY --label previous   # during a rotation's grace period
  coffer get myapp/dev/db --field password
  coffer get myapp/dev/API_KEY --json")]
    Get(GetArgs),

    /// Run a command with secrets in its environment (one request fetches
    /// them all). Its exit status is coffer's.
    #[command(after_help = "Examples:
  coffer run --path myapp/dev -- npm start
  coffer run --path myapp/common --path myapp/dev --only DATABASE_URL,API_KEY -- ./server
  coffer run --env-file .env -- python app.py      # .env may hold coffer://myapp/dev/DB_PASSWORD
  coffer run --path myapp/dev --redact -- ./test.sh  # values in its output become [REDACTED:NAME]
  coffer run --path myapp/dev --offline -- ./server  # only the encrypted copy of the last fetch
  coffer run --path myapp/dev --only-example -- ./server  # only names in ./.env.example

Variables are named by the last segment of each secret's path; a fields
value is injected as JSON. Every name must be a variable name (letters,
digits and _), wherever it comes from. Names that make programs load or
run code, trust other certificates or send traffic elsewhere (LD_*,
DYLD_*, PATH, BASH_*, ENV, PYTHON*, NODE_* but NODE_ENV, GIT_*, *_OPTIONS,
EDITOR, PAGER, *_PROXY, HOME, XDG_*, COFFER_*, ...; any case) are refused
unless allowed with --allow-env NAME; --only-example[=FILE] also refuses
every name the project's .env.example does not list. ${VAR} in a .env
file never reads a COFFER_* credential, no .env value may hold a token,
and no reference holding a token is sent. Every coffer credential (COFFER_*
but COFFER_ADDR, COFFER_CACERT, COFFER_LOG), and any other inherited
variable holding one, is removed from the command's environment
(--keep-token keeps COFFER_TOKEN and such copies).

Without --redact, coffer replaces itself with the command (signals and
exit status are the command's own);
with --redact it forwards SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 (and SIGINT
and SIGQUIT when not in a terminal's foreground: a terminal sends those to
the command itself) and exits with the command's status; a command ended
by signal N ends coffer by signal N too (a shell shows 128+N).

Each successful fetch is kept encrypted (under a key derived from your
token) in ~/.cache/coffer/run for --cache-ttl (default 24h). It is used
only when the server cannot be reached, saying so on stderr, or with
--offline; a server that refuses the request deletes it.")]
    Run(crate::run_cmd::RunArgs),

    /// Import a .env or JSON file under a prefix: reports created, updated
    /// and unchanged names (never values) and writes all or nothing.
    #[command(after_help = "Examples:
  coffer import .env --path myapp/dev --dry-run      # what would change
  coffer import .env --path myapp/dev                # refused if a stored value differs
  coffer import .env --path myapp/dev --overwrite
  coffer import secrets.json --path myapp/prod       # {\"NAME\": \"value\", \"DB\": {\"user\": \"u\"}}
  heroku config --json | coffer import - --format json --path myapp/prod

Entries that are coffer:// references, have no value, or are empty (unless
--allow-empty) are skipped and listed. ${VAR} in a .env file refers to the
file's own earlier entries, never to your environment. Every change is
written in one request, each checked against the version it was compared
with: a concurrent change makes the whole import fail (exit 8).")]
    Import(crate::transfer_cmd::ImportArgs),

    /// Export the secrets under prefixes as dotenv, JSON, YAML, shell, a
    /// Kubernetes Secret, Docker secret files or GitHub Actions variables.
    #[command(after_help = "Examples:
  coffer export --path myapp/prod --format dotenv --out .env
  coffer export --path myapp/prod --format k8s --namespace shop | kubectl apply -f -
  coffer export --path myapp/prod --format docker --out ./secrets
  eval \"$(coffer export --path myapp/dev --format shell)\"
  coffer export --path ci/deploy --format github     # in a workflow step

Variables are named by the last segment of each secret's path; a fields
value is written as JSON (an object in json and yaml). dotenv, shell,
github and k8s refuse the names `coffer run` refuses (BASH_ENV, PYTHONPATH,
...) unless allowed with --allow-env NAME. dotenv writes $ only where no
reader runs or expands it (single quotes), and refuses a value that needs
double quotes and holds $NAME or ${. Files written with --out are
readable by you only (docker files: 0400 in a 0700 directory), replaced
atomically, never written through a symbolic link; --out /dev/stdout, a
pipe or a device is refused (leave out --out for stdout).
github prints ::add-mask:: for each value on stdout, then appends
NAME<<DELIMITER blocks to $GITHUB_ENV (or --out).")]
    Export(crate::transfer_cmd::ExportArgs),

    /// Migrate from another secrets manager: `coffer migrate from-vault`
    /// copies a Vault or OpenBao KV version 2 mount, with every version,
    /// and its policies.
    #[command(subcommand)]
    Migrate(crate::migrate_cmd::MigrateCommand),

    /// Cloud secret stores in and out: `coffer sync pull|push aws-sm|aws-ssm`
    /// imports AWS Secrets Manager or SSM Parameter Store secrets under a
    /// prefix with their versions, or exports a folder's current values.
    #[command(subcommand)]
    Sync(crate::sync_cmd::SyncCommand),

    /// Print a .env.example for the secrets under prefixes: names only,
    /// never values (needs only `list`).
    #[command(after_help = "Examples:
  coffer example --path myapp/dev > .env.example
  coffer example --path myapp/dev --template .env.example --out .env.example  # keep descriptions

With --template, the comment lines just above each name (its description)
and its placeholder value are kept; names no longer stored are dropped
(listed on stderr).")]
    Example(crate::check_cmd::ExampleArgs),

    /// Check that every name in a .env.example is set, not empty and not a
    /// placeholder, in the store, the environment or .env files; with
    /// --known, also that no value is one that leaked. Lists every problem
    /// at once, never a value; exits 7 if there is any.
    #[command(after_help = "Examples:
  coffer check --path myapp/prod                     # against .env.example
  coffer check --path myapp/prod --template deploy/.env.example --json
  coffer run --path myapp/prod -- coffer check --env  # what the app will see
  coffer check --env-file .env --known myapp/        # a local .env, and no leaked value

Problems: missing, empty, placeholder (the template's own example value),
weak (a well-known default such as changeme or password), compromised
(with --known: the value of a secret version marked compromised by
`coffer leak`, found by the server's keyed fingerprints; needs only list,
and no value is sent). Stored names that the template does not list are
noted, not counted as problems.")]
    Check(crate::check_cmd::CheckArgs),

    /// List secrets under a prefix.
    #[command(after_help = "Examples:
  coffer ls                 # top level
  coffer ls myapp/dev
  coffer ls myapp -r        # everything below myapp/
  coffer ls myapp --all     # include deleted secrets")]
    Ls(LsArgs),

    /// Delete a secret's current version (or given versions). Soft by
    /// default: `coffer undelete` restores it. `--destroy` erases for good.
    #[command(after_help = "Examples:
  coffer rm myapp/dev/OLD_KEY
  coffer rm myapp/dev/OLD_KEY --version 1,2
  coffer rm myapp/dev/LEAKED --destroy --version 3")]
    Rm(RmArgs),

    /// Restore soft-deleted versions (default: the current one).
    #[command(after_help = "Examples:
  coffer undelete myapp/dev/OLD_KEY
  coffer undelete myapp/dev/OLD_KEY --version 2")]
    Undelete(VersionsArgs),

    /// Print a random value from the operating system's CSPRNG (locally; no
    /// server involved).
    #[command(after_help = "Examples:
  coffer generate                        # 32 bytes, base64
  coffer generate --bytes 16 --format hex
  coffer generate --format urlsafe
  coffer generate --format alnum --bytes 24
  coffer generate --format words         # 10 words from the EFF list (129 bits)
  coffer generate --format words --words 6

Formats: base64 (padded), hex (lowercase), urlsafe (unpadded URL-safe
base64), alnum (letters and digits, as many as carry N bytes of
randomness), words (a passphrase). Every symbol is drawn uniformly.")]
    Generate(crate::lifecycle_cmd::GenerateArgs),

    /// Rotate a secret: a new value (generated, or from stdin with --stdin)
    /// becomes current, and the old one stays readable as `previous` for a
    /// grace period. With --stage, the new value only becomes `pending`.
    #[command(after_help = "Examples:
  coffer rotate myapp/prod/SESSION_KEY                  # the lifecycle rule's generator
  coffer rotate myapp/prod/SESSION_KEY --generate hex:32 --grace 1h
  printf '%s' \"$NEW_KEY\" | coffer rotate myapp/prod/STRIPE_KEY --stdin
  coffer rotate myapp/prod/JWT_KEY --stage              # pending only
  coffer promote myapp/prod/JWT_KEY                     # then make it current
  coffer rotate myapp/prod/JWT_KEY --cancel             # or drop the pending version

Needs the rotate capability. The grace period is --grace, else the
lifecycle rule's, else 24h; after it, `--label previous` is refused.
A secret made by `coffer pg manage` rotates its PostgreSQL roles too (see
`coffer pg manage --help`); --force rotates it even while the previous
credentials are in their grace period.")]
    Rotate(crate::lifecycle_cmd::RotateArgs),

    /// Make a staged rotation's pending version current, in one step; the
    /// old current version becomes previous for the grace period.
    #[command(after_help = "Examples:
  coffer promote myapp/prod/JWT_KEY
  coffer promote myapp/prod/JWT_KEY --grace 2h")]
    Promote(crate::lifecycle_cmd::PromoteArgs),

    /// Set or clear a secret's expiry. An expired secret is refused to every
    /// reader (exit 4) until it gets a new expiry.
    #[command(after_help = "Examples:
  coffer expire myapp/prod/PARTNER_API_KEY --in 90d
  coffer expire myapp/prod/PARTNER_API_KEY --at 2027-03-31T00:00:00Z
  coffer expire myapp/prod/PARTNER_API_KEY --never")]
    Expire(crate::lifecycle_cmd::ExpireArgs),

    /// PostgreSQL role rotation: secrets that hold the credentials of two
    /// alternating PostgreSQL roles.
    #[command(subcommand)]
    Pg(crate::lifecycle_cmd::PgCommand),

    /// Lifecycle rules per path pattern: strength (min bits), rotation
    /// interval, generator and grace period.
    #[command(subcommand)]
    Lifecycle(crate::lifecycle_cmd::LifecycleCommand),

    /// Rotation schedules: which secrets are due, overdue, pending or
    /// expiring.
    #[command(subcommand)]
    Rotation(crate::lifecycle_cmd::RotationCommand),

    /// Write a new version equal to an earlier one.
    #[command(after_help = "Examples:
  coffer rollback myapp/prod/API_KEY 3")]
    Rollback(crate::lifecycle_cmd::RollbackArgs),

    /// Respond to a leaked secret in one command: mark the version
    /// compromised (it never becomes current again; audited, with an
    /// alert), list every identity that read it, and rotate it (or stage
    /// the rotation). No value is read or printed.
    #[command(after_help = "Examples:
  coffer leak myapp/prod/STRIPE_KEY --reason 'pushed to a public repo in commit 1a2b3c'
  coffer leak myapp/prod/STRIPE_KEY --reason 'seen in CI log 4411' --grace 0s
  coffer leak myapp/prod/JWT_KEY --reason 'in a support ticket' --stage
  coffer leak myapp/prod/API_KEY --version 3 --reason 'old backup leaked' --no-rotate
  coffer leak myapp/prod/DB --reason 'pasted in chat' --json

Needs the rotate capability on the path; listing the readers needs admin
on sys/audit (without it the rest is done and the command says so). A
compromised version is refused by rollback, promote, cp and mv (when it
would be current) and undelete (as current), with exit 8. By default the
secret is rotated when the leaked version is the current one, with the
lifecycle rule's generator (--generate SPEC otherwise); the leaked value
stays readable as `previous` for the grace period unless --grace 0s. A
secret made by `coffer pg manage` rotates its PostgreSQL roles.")]
    Leak(crate::leak_cmd::LeakArgs),

    /// Copy a secret with its whole history to a new path.
    #[command(after_help = "Examples:
  coffer cp myapp/dev/DB_URL myapp/test/DB_URL")]
    Cp(crate::lifecycle_cmd::CopyArgs),

    /// Move (rename) a secret with its whole history to a new path.
    #[command(after_help = "Examples:
  coffer mv myapp/prod/DB_PASS myapp/prod/DB_PASSWORD")]
    Mv(crate::lifecycle_cmd::CopyArgs),

    /// Environments: promote one environment's secrets into another.
    #[command(subcommand)]
    Env(crate::lifecycle_cmd::EnvCommand),

    /// Show a secret's versions: who wrote each and when (never values).
    #[command(after_help = "Examples:
  coffer history myapp/dev/API_KEY
  coffer history myapp/dev/API_KEY --json")]
    History(PathJson),

    /// Log in and save the token for later commands (readable by you only).
    /// With --user, log in with a password (from stdin or prompted for);
    /// without, save a token you already have (from stdin or prompted for).
    #[command(after_help = "Examples:
  coffer login --user alice                  # prompts for the password
  coffer login --user alice --totp 123456    # with one-time codes on
  coffer login                               # paste a token, no echo
  coffer login < ~/.local/share/coffer/dev/root-token
  coffer login --method approle --role-id rid_7Qb... --secret-id-file /run/secrets/sid
  coffer login --method jwt --role deploy-api              # on GitHub Actions
  coffer login --method jwt --role ci --jwt-file \"$CI_JOB_JWT_FILE\"
  COFFER_JWT=\"$(cat /var/run/secrets/tokens/coffer)\" coffer login --method jwt --role payments")]
    Login(LoginArgs),

    /// App roles: short-lived tokens for machines with no platform identity
    /// (a role id and a secret id log in).
    #[command(subcommand)]
    Approle(crate::approle_cmd::ApproleCommand),

    /// Machine logins: JWT/OIDC roles for GitHub Actions, GitLab CI and
    /// Kubernetes service accounts.
    #[command(subcommand)]
    Auth(crate::auth_cmd::AuthCommand),

    /// Manage policies: named sets of capabilities on path patterns.
    #[command(subcommand)]
    Policy(crate::access_cmd::PolicyCommand),

    /// Create, inspect, renew and revoke tokens.
    #[command(subcommand)]
    Token(crate::access_cmd::TokenCommand),

    /// Invite people (admin) and join by invitation.
    #[command(subcommand)]
    Invite(crate::access_cmd::InviteCommand),

    /// Manage users (admin).
    #[command(subcommand)]
    User(crate::access_cmd::UserCommand),

    /// One-time links for sharing a secret with a person: encrypted here,
    /// unreadable by the server, expiring, limited in views.
    #[command(subcommand)]
    Share(crate::share_cmd::ShareCommand),

    /// One-time codes (TOTP) for your login.
    #[command(subcommand)]
    Totp(crate::access_cmd::TotpCommand),

    /// Protected environments: prefixes whose values people cannot read.
    #[command(subcommand)]
    Protected(crate::access_cmd::ProtectedCommand),

    /// Emergency read access to a protected secret, for a limited time. Needs
    /// `breakglass` in a policy and a reason; raises an alert.
    #[command(after_help = "Examples:
  coffer breakglass payments/prod/DB_PASSWORD --reason 'INC-4211: restore from backup'
  coffer breakglass payments/prod/ --reason 'INC-4211' --ttl 30m
  coffer breakglass --list")]
    Breakglass(crate::access_cmd::BreakglassArgs),

    /// The audit log: verify its integrity, search it, see who read a secret.
    #[command(subcommand)]
    Audit(crate::audit_cmd::AuditCommand),

    /// Find secrets (API keys, tokens, private keys, passwords) in files,
    /// standard input, staged changes or git history. Needs no server, but
    /// for --known (the exact values coffer stores). Prints each finding
    /// redacted; exits 9 if any is found.
    #[command(after_help = "Examples:
  coffer scan                                  # the current directory, .env files included
  coffer scan src config/app.yaml
  git show main:deploy/values.yaml | coffer scan -   # standard input
  coffer scan --staged                         # what `git commit` would record (the hook runs this)
  coffer scan --history                        # every line ever added, with commit, author and date
  coffer scan --history main..HEAD --format sarif > scan.sarif
  coffer scan --baseline .coffer-scan-baseline.json --write-baseline   # accept what is there now
  coffer scan --baseline .coffer-scan-baseline.json                    # report only new findings
  coffer scan --known                          # also the exact values coffer stores (needs list)
  coffer scan --known myapp/ --respond         # and offer `coffer leak` for each one found

Allow one finding with a `coffer:allow` comment on its line, or
`coffer:allow-next-line` on the line before. Rules, allowed paths and
patterns per repository: .coffer-scan.toml (see docs/src/scanning.md). With --known
the scan asks the server (COFFER_ADDR, COFFER_TOKEN) for keyed fingerprints
of the values stored under the prefix and reports each one found as
`coffer-known-value`, naming its path and version; only values strong
enough that guessing them offline is hopeless are fingerprinted. Exit
status: 0 nothing found, 9 secrets found, 2 usage error, 7 bad
configuration; with --known also 3, 4, 5 and 6 as other commands.")]
    Scan(crate::scan_cmd::ScanArgs),

    /// Install or remove the git pre-commit hook that runs `coffer scan --staged`.
    #[command(subcommand)]
    Hook(crate::hook_cmd::HookCommand),

    /// Forget the saved token.
    Logout,

    /// Check this setup and say how to fix each problem: the server and its
    /// TLS, seal and audit state, clock skew, the token and its file, .env
    /// files git would commit, the pre-commit hook, recent backups.
    #[command(
        after_help = "Exits 0 when no check failed (warnings allowed), 7 when one did.

Examples:
  coffer doctor
  coffer doctor --dir ~/src/myapp          # check that project's git repository
  coffer doctor --json | jq '.checks[] | select(.status != \"ok\")'"
    )]
    Doctor(crate::doctor_cmd::DoctorArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:
  coffer completions bash > /etc/bash_completion.d/coffer
  source <(coffer completions bash)                    # this shell only
  coffer completions zsh > \"${fpath[1]}/_coffer\"
  coffer completions fish > ~/.config/fish/completions/coffer.fish")]
    Completions(crate::docs_cmd::CompletionsArgs),

    /// Write manual pages (roff) for coffer and each of its commands into a
    /// directory.
    #[command(after_help = "Examples:
  coffer manpages /usr/local/share/man/man1
  coffer manpages ./man && man -l ./man/coffer-set.1

Pages are named after the command: coffer.1, coffer-set.1,
coffer-operator-unseal.1, ... Existing pages of the same names are replaced.")]
    Manpages(crate::docs_cmd::ManpagesArgs),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// How to log in: `password` (with --user), `token` (paste one), `jwt`
    /// (a machine, with --role) or `approle` (a machine, with --role-id).
    /// Default: password with --user, else token.
    #[arg(long, value_enum)]
    pub method: Option<LoginMethod>,
    /// The JWT role to log in with (--method jwt).
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Read the JWT from this file (`-`: standard input); otherwise
    /// COFFER_JWT, or the GitHub Actions runner's OIDC token (--method jwt).
    #[arg(long, value_name = "FILE")]
    pub jwt_file: Option<PathBuf>,
    /// The audience to ask the GitHub Actions runner for (default: the
    /// server's address).
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    /// Log in as this user with a password.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The current one-time code, for accounts with TOTP on.
    #[arg(long, value_name = "CODE", requires = "user")]
    pub totp: Option<String>,
    /// The app role's role id (with --method approle; the secret id from
    /// --secret-id-file, COFFER_SECRET_ID or stdin).
    #[arg(long, value_name = "ID")]
    pub role_id: Option<String>,
    /// Read the secret id from this file (with --method approle).
    #[arg(long, value_name = "FILE", requires = "role_id")]
    pub secret_id_file: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// How `coffer login` logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoginMethod {
    /// A user name and password (and one-time code).
    Password,
    /// Save a token you already have.
    Token,
    /// A machine's JWT from its platform, for a JWT role.
    Jwt,
    /// An app role's role id and secret id.
    Approle,
}

#[derive(Debug, Args)]
pub struct PathJson {
    /// Secret path, such as myapp/dev/API_KEY.
    pub path: String,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Development mode: embedded store, initialised with one unseal key and
    /// unsealed automatically, root token in DATA_DIR/root-token. Loopback only.
    #[arg(long, conflicts_with = "config")]
    pub dev: bool,
    /// Configuration file (TOML) for a real deployment.
    #[arg(long, value_name = "FILE", required_unless_present = "dev")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config file's data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides the config file's listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Storage: `sqlite` (DATA_DIR/coffer.db, the default) or
    /// `postgres://USER@HOST/DB[?sslmode=verify-full&sslrootcert=FILE]`
    /// (overrides the config file's storage.url). Give the password in
    /// COFFER_STORAGE_PASSWORD or the config file, not here: command lines
    /// are visible to other users.
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// Audit log file (repeatable; replaces the config file's `audit.files`;
    /// default DATA_DIR/audit.log).
    #[arg(long, value_name = "PATH")]
    pub audit_file: Vec<PathBuf>,
    /// Also send audit records to a socket: tcp://HOST:PORT or unix:/PATH
    /// (repeatable).
    #[arg(long, value_name = "ADDR", value_parser = parse_audit_socket)]
    pub audit_socket: Vec<String>,
    /// Also write audit records to standard output.
    #[arg(long)]
    pub audit_stdout: bool,
    /// Seconds between passes of the lifecycle scheduler (default 60, or
    /// `lifecycle_interval_secs` in the config file).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lifecycle_interval: Option<u64>,
}

fn parse_audit_socket(s: &str) -> Result<String, String> {
    coffer_audit::SinkSpec::socket(s).map(|_| s.to_string())
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Initialise a new server: prints the unseal keys and the root token, once.
    #[command(after_help = "Examples:
  coffer operator init                             # 5 shares, any 3 unseal
  coffer operator init --shares 1 --threshold 1
  coffer operator init --json > init.json          # keep it somewhere safe")]
    Init(InitArgs),
    /// Provide one unseal key (from stdin, or prompted for without echo).
    #[command(after_help = "Examples:
  coffer operator unseal                # prompts
  coffer operator unseal < key-1
  coffer operator unseal --reset        # forget the keys given so far")]
    Unseal(UnsealArgs),
    /// Seal the server: it forgets its keys until unsealed again.
    Seal,
    /// Add a new keyring key; new writes use it, and the server moves older
    /// versions to it in the background. (A key is also added
    /// automatically once the active one has sealed its share of values.)
    #[command(after_help = "Examples:
  coffer operator rotate
  coffer operator rotate --json")]
    Rotate(JsonFlag),
    /// The keyring's keys: ids and creation times, never key material.
    #[command(after_help = "Examples:
  coffer operator keyring
  coffer operator keyring --json")]
    Keyring(JsonFlag),
    /// Seal status (same as `coffer status`).
    Status(JsonFlag),
    /// Write an encrypted backup of the whole store, taken as one consistent
    /// snapshot while the server runs (needs an admin token).
    #[command(after_help = "Examples:
  coffer operator backup coffer-2026-11-23.backup
  coffer operator backup nightly.backup --json

The backup is encrypted under a key derived from the root key: restoring it
needs the original unseal keys, and so does the restored server.")]
    Backup(BackupArgs),
    /// Restore a backup into a fresh store (SQLite or PostgreSQL), with the
    /// original unseal keys (from stdin, one per line, or prompted for).
    /// The server must not be running on the target. Also the way to move
    /// from SQLite to PostgreSQL.
    #[command(after_help = "Examples:
  coffer operator restore nightly.backup --data-dir /var/lib/coffer < unseal-keys
  COFFER_STORAGE_PASSWORD=... coffer operator restore nightly.backup \\
      --storage postgres://coffer@db.internal/coffer?sslmode=verify-full
  coffer operator restore nightly.backup --config /etc/coffer/coffer.toml

The whole backup is checked (every frame and its checksum) before anything is
written; the target must be empty.")]
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// File to write (created readable by its owner only; never overwritten).
    pub file: PathBuf,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// Restore into the SQLite store in this data directory.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["storage", "config"])]
    pub data_dir: Option<PathBuf>,
    /// Restore into this PostgreSQL database (password in
    /// COFFER_STORAGE_PASSWORD).
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    pub storage: Option<String>,
    /// Restore into the store a server configuration file names.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Number of unseal key shares.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..))]
    pub shares: u8,
    /// Shares needed to unseal.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..))]
    pub threshold: u8,
    /// Print JSON (`unseal_keys`, `root_token`) for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// Forget the unseal keys provided so far.
    #[arg(long)]
    pub reset: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Secret path, such as myapp/dev/API_KEY.
    pub path: String,
    /// The value on the command line. Discouraged: other users can see it
    /// in the process list and it lands in shell history. Prefer stdin.
    #[arg(long, value_name = "VALUE", conflicts_with = "generate")]
    pub value: Option<String>,
    /// Let the server generate the value (FORMAT[:N]: base64, hex, urlsafe,
    /// alnum with N bytes of randomness, or words with N words; default
    /// base64:32). The value is stored, never printed or sent back.
    #[arg(long, value_name = "SPEC", num_args = 0..=1, default_missing_value = "base64:32",
          conflicts_with_all = ["fields", "raw", "allow_empty"])]
    pub generate: Option<String>,
    /// Stdin is a JSON object of string fields, not text.
    #[arg(long)]
    pub fields: bool,
    /// Keep the value exactly as read (by default one trailing newline is dropped).
    #[arg(long)]
    pub raw: bool,
    /// Allow an empty value.
    #[arg(long)]
    pub allow_empty: bool,
    /// Write only if the current version is N (0: only if the secret does not exist).
    #[arg(long, value_name = "N")]
    pub cas: Option<u64>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Secret path.
    pub path: String,
    /// Read this version instead of the current one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "label")]
    pub version: Option<u64>,
    /// Read the version this label names: current, previous (during its
    /// grace period) or pending (a staged rotation).
    #[arg(long, value_name = "LABEL", value_parser = ["current", "previous", "pending"])]
    pub label: Option<String>,
    /// Print only this field of a fields value.
    #[arg(long, value_name = "NAME", conflicts_with = "json")]
    pub field: Option<String>,
    /// Print JSON (path, version, value, created_at, created_by).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Prefix to list (default: the top level).
    #[arg(default_value = "")]
    pub prefix: String,
    /// List everything below the prefix, not only its direct children.
    #[arg(short, long)]
    pub recursive: bool,
    /// Include secrets whose current version is deleted.
    #[arg(long)]
    pub all: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Secret path.
    pub path: String,
    /// Versions, comma-separated (default: the current one).
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub version: Vec<u64>,
    /// Erase the versions for good instead of soft-deleting them.
    #[arg(long)]
    pub destroy: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// Secret path.
    pub path: String,
    /// Versions, comma-separated (default: the current one).
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub version: Vec<u64>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
