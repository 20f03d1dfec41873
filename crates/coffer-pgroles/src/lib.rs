//! Login roles on a PostgreSQL server that coffer manages: the database side
//! of PostgreSQL role rotation.
//!
//! Coffer keeps two roles per managed login and alternates between them: a
//! rotation gives the inactive role a new password, the secret's `current`
//! version then names it, and the old role keeps its password until the
//! grace period ends. This crate makes those changes, each batch in one
//! transaction, over an administrator connection:
//!
//! - **Passwords never reach PostgreSQL.** A new password is sent as a
//!   SCRAM-SHA-256 verifier computed here (as `psql`'s `\password` does), so
//!   neither the wire, the server's statement log nor `pg_authid` sees it.
//! - **The grace period is enforced by PostgreSQL itself**: the old role's
//!   password gets `VALID UNTIL` the end of the grace period (computed from
//!   the server's clock), so it stops working on time even if no coffer node
//!   is running then.
//! - **Role names are checked**, not just quoted: lowercase letters, digits
//!   and `_`, starting with a letter or `_`, at most 63 bytes.
//!
//! Errors carry PostgreSQL's message and never a password.

#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use coffer_store::PgTarget;
use zeroize::Zeroizing;

/// How long one batch of changes may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a role change failed. The message names the role and the cause,
/// never a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

type Result<T> = std::result::Result<T, Error>;

fn db_error(context: &str, e: &tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error(format!("{context}: {}", db.message())),
        None => {
            let mut message = format!("{context}: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Error(message)
        }
    }
}

/// Checks a role name: lowercase letters, digits and `_`, starting with a
/// letter or `_`, at most 63 bytes (PostgreSQL's identifier limit), and not
/// a reserved `pg_` name.
pub fn check_role_name(name: &str) -> Result<()> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok_start || !ok_rest || name.len() > 63 {
        return Err(Error(format!(
            "{name:?} is not a role name coffer manages: use 1 to 63 lowercase letters, digits \
             and _, starting with a letter or _"
        )));
    }
    if name.starts_with("pg_") {
        return Err(Error(format!(
            "{name:?} is reserved by PostgreSQL (names starting with pg_)"
        )));
    }
    Ok(())
}

/// An identifier in double quotes (after [`check_role_name`], which admits
/// no quote, this is belt and braces).
fn ident(name: &str) -> Result<String> {
    check_role_name(name)?;
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// What the server says about one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role's name.
    pub name: String,
    /// It may log in.
    pub can_login: bool,
    /// It is a superuser.
    pub superuser: bool,
}

/// One change to a role.
pub enum Change<'a> {
    /// Gives the role this password (sent as a SCRAM verifier), lets it log
    /// in, and lifts any `VALID UNTIL`.
    SetPassword {
        /// The role.
        role: &'a str,
        /// The new password.
        password: &'a [u8],
    },
    /// The role's password stops working this many milliseconds from now
    /// (by the server's clock; 0: at once).
    ExpireIn {
        /// The role.
        role: &'a str,
        /// Milliseconds from now.
        ms: i64,
    },
    /// Lifts the role's `VALID UNTIL` (undoes [`Change::ExpireIn`]).
    NeverExpire {
        /// The role.
        role: &'a str,
    },
    /// Removes the role's password: password logins fail from now on.
    Retire {
        /// The role.
        role: &'a str,
    },
}

/// An administrator connection to a PostgreSQL server.
pub struct RoleAdmin {
    client: tokio_postgres::Client,
    user: String,
}

impl RoleAdmin {
    /// Connects with `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`,
    /// with `sslmode` and `sslrootcert` as for coffer's own storage) and
    /// `password` when it is not in the URL.
    pub async fn connect(url: &str, password: Option<&[u8]>) -> Result<RoleAdmin> {
        if !coffer_store::postgres::is_postgres_url(url) {
            return Err(Error(
                "the administrator connection must be a postgres:// or postgresql:// URL".into(),
            ));
        }
        let mut target = PgTarget::parse(url).map_err(|e| Error(e.to_string()))?;
        if let Some(p) = password {
            target.password(p);
        }
        let client = target.connect().await.map_err(|e| {
            Error(format!(
                "cannot connect to PostgreSQL as the administrator ({}): {e}",
                coffer_store::postgres::redact_url(url)
            ))
        })?;
        let user: String = client
            .query_one("SELECT current_user::text", &[])
            .await
            .map_err(|e| db_error("cannot ask PostgreSQL who the administrator is", &e))?
            .get(0);
        Ok(RoleAdmin { client, user })
    }

    /// The user the administrator connection logged in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the administrator may change roles (superuser or CREATEROLE).
    pub async fn can_manage_roles(&self) -> Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| db_error("cannot read the administrator's role", &e))?;
        Ok(row.get(0))
    }

    /// What the server knows about these roles (absent ones are left out).
    pub async fn inspect(&self, roles: &[&str]) -> Result<Vec<RoleInfo>> {
        let names: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let rows = self
            .client
            .query(
                "SELECT rolname::text, rolcanlogin, rolsuper FROM pg_roles \
                 WHERE rolname = ANY($1) ORDER BY rolname",
                &[&names],
            )
            .await
            .map_err(|e| db_error("cannot read the roles", &e))?;
        Ok(rows
            .iter()
            .map(|r| RoleInfo {
                name: r.get(0),
                can_login: r.get(1),
                superuser: r.get(2),
            })
            .collect())
    }

    /// Creates a login role without a password, as a member of `member_of`
    /// when given (the group that owns the application's objects).
    pub async fn create_login_role(&self, role: &str, member_of: Option<&str>) -> Result<()> {
        let mut sql = format!("CREATE ROLE {} LOGIN PASSWORD NULL", ident(role)?);
        if let Some(group) = member_of {
            sql.push_str(&format!(" IN ROLE {}", ident(group)?));
        }
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| db_error(&format!("cannot create role {role}"), &e))
    }

    /// Applies the changes in one transaction: all of them or none.
    pub async fn apply(&mut self, changes: &[Change<'_>]) -> Result<()> {
        tokio::time::timeout(STATEMENT_TIMEOUT, self.apply_now(changes))
            .await
            .map_err(|_| {
                Error(format!(
                    "PostgreSQL did not finish the role changes within {}s; nothing was changed",
                    STATEMENT_TIMEOUT.as_secs()
                ))
            })?
    }

    async fn apply_now(&mut self, changes: &[Change<'_>]) -> Result<()> {
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| db_error("cannot begin a transaction", &e))?;
        for change in changes {
            match change {
                Change::SetPassword { role, password } => {
                    let verifier =
                        Zeroizing::new(postgres_protocol::password::scram_sha_256(password));
                    // The verifier is base64 with `$` and `:`; check anyway,
                    // since it goes into the statement as a literal.
                    if !verifier
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+/=$:-".contains(c))
                    {
                        return Err(Error("the password verifier has an unexpected form".into()));
                    }
                    let sql = Zeroizing::new(format!(
                        "ALTER ROLE {} WITH LOGIN PASSWORD '{}' VALID UNTIL 'infinity'",
                        ident(role)?,
                        verifier.as_str()
                    ));
                    tx.batch_execute(&sql)
                        .await
                        .map_err(|e| db_error(&format!("cannot set the password of {role}"), &e))?;
                }
                Change::ExpireIn { role, ms } => {
                    let until: String = tx
                        .query_one(
                            "SELECT to_char((now() + $1::bigint * interval '1 millisecond') \
                             AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                            &[&ms.max(&0)],
                        )
                        .await
                        .map_err(|e| db_error("cannot compute the expiry", &e))?
                        .get(0);
                    if !until
                        .chars()
                        .all(|c| c.is_ascii_digit() || "-:.TZ".contains(c))
                    {
                        return Err(Error(format!("unexpected expiry time {until:?}")));
                    }
                    tx.batch_execute(&format!(
                        "ALTER ROLE {} VALID UNTIL '{until}'",
                        ident(role)?
                    ))
                    .await
                    .map_err(|e| db_error(&format!("cannot set the expiry of {role}"), &e))?;
                }
                Change::NeverExpire { role } => {
                    tx.batch_execute(&format!(
                        "ALTER ROLE {} VALID UNTIL 'infinity'",
                        ident(role)?
                    ))
                    .await
                    .map_err(|e| db_error(&format!("cannot lift the expiry of {role}"), &e))?;
                }
                Change::Retire { role } => {
                    tx.batch_execute(&format!("ALTER ROLE {} PASSWORD NULL", ident(role)?))
                        .await
                        .map_err(|e| {
                            db_error(&format!("cannot remove the password of {role}"), &e)
                        })?;
                }
            }
        }
        tx.commit()
            .await
            .map_err(|e| db_error("cannot commit the role changes", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_checked() {
        for good in ["app", "app_blue", "_x", "a1", &"a".repeat(63)] {
            check_role_name(good).unwrap();
        }
        for bad in [
            "",
            "App",
            "1app",
            "app-blue",
            "app\"; DROP ROLE x; --",
            "pg_monitor",
            "é",
            &"a".repeat(64),
        ] {
            assert!(check_role_name(bad).is_err(), "{bad:?}");
        }
    }
}
