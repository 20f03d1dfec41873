//! Rules for the environment variable names coffer sets (`coffer run`) or
//! writes for others to set (`coffer export` to dotenv, shell, github, k8s),
//! and for coffer's own credentials.
//!
//! - **Valid names only.** A name coffer sets is a portable name
//!   (`[A-Za-z_][A-Za-z0-9_]*`) wherever it comes from (a stored secret, a
//!   `.env` key after parsing and quoting, a reference): no `=`, no NUL, no
//!   space, no look-alike letter, never empty.
//! - **Refused families.** Names that make a program load or run code, read
//!   its configuration or trust from elsewhere, or send its traffic elsewhere
//!   are refused unless allowed by name (`--allow-env NAME`). They are
//!   compared ignoring ASCII case: Windows reads names case-insensitively
//!   (`Path`), and on Unix some programs read lowercase forms
//!   (`http_proxy`), so `ld_preload` is refused like `LD_PRELOAD`. The list
//!   is a safety net, not a proof: `--only-example` is the strict mode.
//! - **Coffer's credentials** never reach a command, an expansion or a
//!   request path.

/// How a family matches a name (already upper-cased).
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Exact(&'static str),
    Prefix(&'static str),
    Suffix(&'static str),
}

/// A refused family: its names and why.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    patterns: &'static [Pattern],
    /// Why these names are refused.
    pub reason: &'static str,
}

use Pattern::{Exact as E, Prefix as P, Suffix as S};

/// Every refused family, with its reason ("Dangerous names" in
/// docs/src/delivery.md lists the same).
pub const FAMILIES: &[Family] = &[
    Family {
        patterns: &[
            P("LD_"),
            P("DYLD_"),
            P("MALLOC_"),
            E("GLIBC_TUNABLES"),
            E("GCONV_PATH"),
            E("LOCPATH"),
            E("NLSPATH"),
        ],
        reason: "the dynamic loader and the C library load code or change memory handling from these",
    },
    Family {
        patterns: &[
            E("PATH"),
            E("CDPATH"),
            E("IFS"),
            E("TERMINFO"),
            E("TERMINFO_DIRS"),
            E("TERMCAP"),
        ],
        reason: "they choose which program or file a name resolves to",
    },
    Family {
        patterns: &[
            P("BASH_"),
            E("ENV"),
            E("SHELL"),
            E("SHELLOPTS"),
            E("BASHOPTS"),
            P("PROMPT_COMMAND"),
            E("PS0"),
            E("PS1"),
            E("PS2"),
            E("PS3"),
            E("PS4"),
            E("ZDOTDIR"),
            E("FPATH"),
            E("INPUTRC"),
        ],
        reason: "shells run code from these (startup files, functions, prompts, trace prompts)",
    },
    Family {
        patterns: &[
            E("EDITOR"),
            E("VISUAL"),
            E("PAGER"),
            E("MANPAGER"),
            E("BROWSER"),
            S("_EDITOR"),
            S("_PAGER"),
            S("_BROWSER"),
            S("_ASKPASS"),
            P("SSH_ASKPASS"),
            P("LESS"),
            E("VIMINIT"),
            E("EXINIT"),
            E("MYVIMRC"),
            E("MYGVIMRC"),
            E("VIMRUNTIME"),
        ],
        reason: "programs run the command these name (editors, pagers, browsers, password prompts, less's filters)",
    },
    Family {
        patterns: &[P("GIT_")],
        reason: "git runs commands from these (GIT_CONFIG_COUNT/KEY_n/VALUE_n set any option such as core.fsmonitor; GIT_SSH_COMMAND, GIT_ASKPASS, GIT_EXTERNAL_DIFF, GIT_PROXY_COMMAND, GIT_EXEC_PATH, GIT_DIR)",
    },
    Family {
        patterns: &[
            S("_OPTIONS"),
            S("_OPTS"),
            E("CLASSPATH"),
            E("JAVA_HOME"),
            P("JDK_"),
        ],
        reason: "runtimes take command-line options or code paths from these (NODE_OPTIONS, JAVA_TOOL_OPTIONS, _JAVA_OPTIONS, JAVA_OPTS, MAVEN_OPTS, ...)",
    },
    Family {
        patterns: &[P("PYTHON")],
        reason: "Python imports or runs code from these (PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONWARNINGS, PYTHONBREAKPOINT)",
    },
    Family {
        patterns: &[P("NODE_"), P("NPM_CONFIG_"), P("YARN_")],
        reason: "Node.js and its package managers load code or run scripts from these (NODE_OPTIONS, NODE_PATH, npm_config_script_shell)",
    },
    Family {
        patterns: &[
            P("RUBY"),
            P("GEM_"),
            P("BUNDLE_"),
            P("PERL"),
            P("LUA_"),
            P("PHP"),
            E("TCLLIBPATH"),
            P("ERL_"),
            P("R_PROFILE"),
            P("R_ENVIRON"),
            P("R_LIBS"),
        ],
        reason: "Ruby, Perl, Lua, PHP, Tcl, Erlang and R load or run code from these (RUBYOPT, PERL5OPT, PERL5DB, LUA_INIT, PHPRC, ERL_AFLAGS)",
    },
    Family {
        patterns: &[P("DOTNET_"), P("CORECLR_"), P("COMPLUS_")],
        reason: ".NET loads code from these (DOTNET_STARTUP_HOOKS, CORECLR_PROFILER_PATH)",
    },
    Family {
        patterns: &[
            E("CC"),
            E("CXX"),
            E("CPP"),
            E("LD"),
            E("AR"),
            E("CFLAGS"),
            E("CXXFLAGS"),
            E("CPPFLAGS"),
            E("LDFLAGS"),
            E("MAKEFLAGS"),
            E("MFLAGS"),
            E("MAKEFILES"),
            P("RUSTC"),
            P("RUSTDOC"),
            E("RUSTFLAGS"),
            P("CARGO_BUILD_"),
            P("CARGO_TARGET_"),
            E("CARGO_HOME"),
            E("GOFLAGS"),
            E("GOTOOLCHAIN"),
            E("GOPROXY"),
            E("GOSUMDB"),
            E("GONOSUMDB"),
            E("GOINSECURE"),
            P("PIP_"),
        ],
        reason: "build tools run the compiler, wrapper or package source these name",
    },
    Family {
        patterns: &[
            P("OPENSSL_"),
            // Not every SSL_*: an application's own SSL_KEY is a secret
            // like any other.
            E("SSL_CERT_FILE"),
            E("SSL_CERT_DIR"),
            E("SSLKEYLOGFILE"),
            E("CURL_CA_BUNDLE"),
            E("REQUESTS_CA_BUNDLE"),
            E("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"),
            E("DENO_CERT"),
            E("CARGO_HTTP_CAINFO"),
        ],
        reason: "they change which certificates are trusted, load OpenSSL modules, or write TLS keys to a file",
    },
    Family {
        patterns: &[S("_PROXY")],
        reason: "they send a program's traffic through another host (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY)",
    },
    Family {
        patterns: &[
            E("HOME"),
            P("XDG_"),
            E("KUBECONFIG"),
            E("DOCKER_CONFIG"),
            E("DOCKER_HOST"),
            S("_CONFIG_FILE"),
            E("GNUPGHOME"),
            E("CURL_HOME"),
            E("WGETRC"),
            E("HOSTALIASES"),
            E("RESOLV_HOST_CONF"),
            E("RES_OPTIONS"),
            E("LOCALDOMAIN"),
        ],
        reason: "programs read their configuration (which can run commands: .gitconfig, .bashrc, kubeconfig exec plugins, docker credential helpers) or name resolution from where these point",
    },
    Family {
        patterns: &[
            P("ACTIONS_"),
            P("RUNNER_"),
            E("GITHUB_ENV"),
            E("GITHUB_PATH"),
            E("GITHUB_OUTPUT"),
            E("GITHUB_STATE"),
            E("GITHUB_STEP_SUMMARY"),
            E("GITHUB_EVENT_PATH"),
            E("GITHUB_WORKSPACE"),
            E("GITHUB_ACTION_PATH"),
            E("GITHUB_API_URL"),
            E("GITHUB_SERVER_URL"),
            E("GITHUB_GRAPHQL_URL"),
        ],
        reason: "CI runners and actions read these: ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_RUNTIME_URL and GITHUB_API_URL send a job's tokens to the host they name, GITHUB_ENV and GITHUB_PATH set the next steps' environment",
    },
    Family {
        patterns: &[
            E("VAULT_ADDR"),
            E("VAULT_AGENT_ADDR"),
            E("VAULT_CACERT"),
            E("VAULT_CAPATH"),
            E("VAULT_SKIP_VERIFY"),
            E("BAO_ADDR"),
            E("BAO_AGENT_ADDR"),
            E("BAO_CACERT"),
            E("BAO_CAPATH"),
            E("BAO_SKIP_VERIFY"),
            E("CONSUL_HTTP_ADDR"),
            E("NOMAD_ADDR"),
            E("OP_CONNECT_HOST"),
            E("GH_HOST"),
            P("AWS_ENDPOINT_URL"),
            E("AWS_CA_BUNDLE"),
        ],
        reason: "clients send the token they find in the environment to the address these name, or trust other certificates for it (VAULT_ADDR with the environment's VAULT_TOKEN, as COFFER_ADDR would coffer's)",
    },
    Family {
        patterns: &[
            E("DBUS_SESSION_BUS_ADDRESS"),
            E("DBUS_SYSTEM_BUS_ADDRESS"),
            S("_RSH"),
            E("RSYNC_CONNECT_PROG"),
            E("SVN_SSH"),
            E("HGRCPATH"),
            E("RUSTUP_TOOLCHAIN"),
            E("PKG_CONFIG"),
            E("PROTOC"),
        ],
        reason: "programs run the command these name (D-Bus `unixexec:` addresses, rsync and CVS remote shells, Mercurial hooks, a toolchain or tool path)",
    },
    Family {
        patterns: &[P("COFFER_")],
        reason: "coffer's own settings and credentials: a coffer started by the command would send its token to the address a secret names",
    },
];

/// Names of a refused family that are known to be harmless and common in
/// `.env` files: never refused.
const HARMLESS: &[&str] = &[
    "NODE_ENV",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
];

/// The family that refuses `name`, if any (ASCII case ignored).
pub fn refused(name: &str) -> Option<&'static Family> {
    let upper = name.to_ascii_uppercase();
    if HARMLESS.contains(&upper.as_str()) {
        return None;
    }
    FAMILIES.iter().find(|f| {
        f.patterns.iter().any(|p| match *p {
            Pattern::Exact(e) => upper == e,
            Pattern::Prefix(pre) => upper.starts_with(pre),
            Pattern::Suffix(suf) => upper.ends_with(suf) && upper.len() > suf.len(),
        })
    })
}

/// Whether `name` is refused and not allowed by `allow` (compared as
/// written: `--allow-env` names the exact spelling it allows).
pub fn refused_unless_allowed(name: &str, allow: &[String]) -> bool {
    refused(name).is_some() && !allow.iter().any(|a| a == name)
}

/// The error text for refused names: each with its family's reason.
pub fn refusal_message(names: &[&str], what: &str) -> String {
    let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
    for n in names {
        let reason = refused(n).map_or("refused", |f| f.reason);
        match by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, v)) => v.push(n),
            None => by_reason.push((reason, vec![n])),
        }
    }
    let parts: Vec<String> = by_reason
        .iter()
        .map(|(r, ns)| format!("{} ({r})", ns.join(", ")))
        .collect();
    format!(
        "refusing to {what} {}; pass --allow-env NAME for each if you mean it",
        parts.join("; ")
    )
}

/// Coffer's own environment variables that hold no secret (settings).
/// Every other `COFFER_*` variable is treated as a credential.
pub const COFFER_SETTINGS: &[&str] = &["COFFER_ADDR", "COFFER_CACERT", "COFFER_LOG"];

/// Whether `name` is (or may be) one of coffer's credentials:
/// `COFFER_TOKEN`, `COFFER_INVITE_CODE`, `COFFER_STORAGE_PASSWORD`,
/// `COFFER_WEBHOOK_SECRET`, and any other `COFFER_*` name but the
/// settings above (deny by default). ASCII case is ignored.
pub fn is_coffer_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("COFFER_") && !COFFER_SETTINGS.contains(&upper.as_str())
}

/// The inherited variables to remove from a command's environment: every
/// coffer credential (`COFFER_TOKEN` kept with `keep_token`), and every
/// other variable whose value holds one (a copy of the token under another
/// name: `export MYTOK=$COFFER_TOKEN`, or anything token-shaped). With
/// `keep_token` copies of the token stay, but app-role secret ids (`cfs_`)
/// and invitation codes (`cfi_`) still go: either would let the command log
/// in on its own, with a token that outlives the run's revocation. The
/// second list names those copies.
pub fn credentials_to_remove(
    inherited: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    keep_token: bool,
) -> (Vec<std::ffi::OsString>, Vec<String>) {
    let mut remove = Vec::new();
    let mut copies = Vec::new();
    for (k, v) in inherited {
        let name = k.to_string_lossy().into_owned();
        if is_coffer_credential(&name) {
            if !(keep_token && name == "COFFER_TOKEN") {
                remove.push(k);
            }
        } else if if keep_token {
            looks_like_login_secret(&v.to_string_lossy())
        } else {
            holds_credential(&v.to_string_lossy())
        } {
            copies.push(mask_tokens(&name));
            remove.push(k);
        }
    }
    (remove, copies)
}

/// Whether `s` holds something shaped like a coffer token, invitation
/// code or app-role secret id: `cft_`, `cfi_` or `cfs_` followed by at
/// least 16 base62 characters (a
/// truncated token is still most of one).
pub fn looks_like_token(s: &str) -> bool {
    ["cft_", "cfi_", "cfs_"].iter().any(|prefix| {
        s.match_indices(prefix).any(|(at, _)| {
            s[at + prefix.len()..]
                .bytes()
                .take_while(u8::is_ascii_alphanumeric)
                .count()
                >= 16
        })
    })
}

/// Whether `s` holds something shaped like an app-role secret id or an
/// invitation code (`cfs_` or `cfi_` and 16 or more base62 characters):
/// what logs in, as opposed to a token.
pub fn looks_like_login_secret(s: &str) -> bool {
    ["cfi_", "cfs_"].iter().any(|prefix| {
        s.match_indices(prefix).any(|(at, _)| {
            s[at + prefix.len()..]
                .bytes()
                .take_while(u8::is_ascii_alphanumeric)
                .count()
                >= 16
        })
    })
}

/// `s` with every token-shaped run replaced by `cft_[masked]`, for
/// messages that must name something that may hold one.
pub fn mask_tokens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let next = ["cft_", "cfi_", "cfs_"]
            .iter()
            .filter_map(|p| rest.find(p).map(|at| (at, *p)))
            .min();
        let Some((at, prefix)) = next else {
            out.push_str(rest);
            return out;
        };
        let body = rest[at + prefix.len()..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        out.push_str(&rest[..at]);
        out.push_str(prefix);
        if body > 0 {
            out.push_str("[masked]");
        }
        rest = &rest[at + prefix.len() + body..];
    }
}

/// Whether `s` holds the value (8 bytes or more) of one of coffer's
/// credential variables in this process's environment.
pub fn holds_own_credential(s: &str) -> bool {
    std::env::vars_os().any(|(k, v)| {
        is_coffer_credential(&k.to_string_lossy())
            && v.to_str()
                .map(str::trim)
                .is_some_and(|v| v.len() >= 8 && s.contains(v))
    })
}

/// Whether `s` holds a coffer credential: a token shape, or the value of a
/// credential variable of this process's environment.
pub fn holds_credential(s: &str) -> bool {
    looks_like_token(s) || holds_own_credential(s)
}

/// Refuses, before any request, paths (or names) that hold something
/// token-shaped or a credential's value: the server would record them.
/// The message says which argument, never what it holds.
pub fn refuse_credential_paths<'a>(
    what: &str,
    paths: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    // The server's own rule too (any case, any length of body): what it
    // would refuse is never sent, so it never reaches a request line.
    let n = paths
        .into_iter()
        .filter(|p| holds_credential(p) || coffer_policy::contains_credential(p))
        .count();
    if n == 0 {
        return Ok(());
    }
    Err(crate::exit::fail(
        crate::exit::Status::Invalid,
        format!(
            "{n} {what} hold(s) a coffer token or credential: never sent to the server; nothing done"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_families() {
        for n in [
            "LD_PRELOAD",
            "ld_preload",
            "DYLD_INSERT_LIBRARIES",
            "PATH",
            "Path",
            "NODE_OPTIONS",
            "NODE_PATH",
            "PYTHONPATH",
            "PYTHONWARNINGS",
            "BROWSER",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "GIT_CONFIG_VALUE_0",
            "GIT_ASKPASS",
            "DOTNET_STARTUP_HOOKS",
            "CORECLR_PROFILER_PATH",
            "COMPlus_EnableDiagnostics",
            "OPENSSL_CONF",
            "LUA_INIT",
            "PHPRC",
            "LESSCLOSE",
            "PERL5OPT",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JAVA_OPTS",
            "SSH_ASKPASS",
            "SUDO_ASKPASS",
            "EDITOR",
            "GIT_PAGER",
            "MANPAGER",
            "BASH_ENV",
            "BASH_FUNC_x%%",
            "ENV",
            "ZDOTDIR",
            "PS4",
            "PROMPT_COMMAND",
            "TERMINFO",
            "LOCPATH",
            "NLSPATH",
            "GCONV_PATH",
            "MALLOC_CHECK_",
            "GLIBC_TUNABLES",
            "SSL_CERT_FILE",
            "CURL_CA_BUNDLE",
            "REQUESTS_CA_BUNDLE",
            "HTTP_PROXY",
            "https_proxy",
            "HOME",
            "XDG_CONFIG_HOME",
            "COFFER_ADDR",
            "COFFER_TOKEN",
            "SSLKEYLOGFILE",
            "KUBECONFIG",
            "RUSTC_WRAPPER",
            "GOFLAGS",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "actions_runtime_url",
            "ACTIONS_CACHE_URL",
            "RUNNER_TEMP",
            "GITHUB_API_URL",
            "GITHUB_ENV",
            "GITHUB_PATH",
            "DBUS_SESSION_BUS_ADDRESS",
            "RSYNC_RSH",
            "CVS_RSH",
            "HGRCPATH",
            "VAULT_ADDR",
            "bao_addr",
            "CONSUL_HTTP_ADDR",
            "AWS_ENDPOINT_URL_S3",
            "AWS_CA_BUNDLE",
            "GH_HOST",
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
        ] {
            assert!(refused(n).is_some(), "{n}");
        }
        for n in [
            "DATABASE_URL",
            "API_KEY",
            "PATHS",
            "NODE_ENV",
            "node_env",
            "PYTHONUNBUFFERED",
            "STRIPE_SECRET",
            "OPTIONS",
            "_OPTIONS_",
            "GITHUB_TOKEN",
            "GITHUB_CLIENT_SECRET",
            "GITHUB_WEBHOOK_SECRET",
            "VAULT_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "SSL_KEY",
            "LOG_LEVEL",
            "PORT",
        ] {
            assert!(refused(n).is_none(), "{n}");
        }
    }

    #[test]
    fn credentials() {
        for n in [
            "COFFER_TOKEN",
            "COFFER_INVITE_CODE",
            "COFFER_STORAGE_PASSWORD",
            "COFFER_WEBHOOK_SECRET",
            "COFFER_ANYTHING_NEW",
            "coffer_token",
        ] {
            assert!(is_coffer_credential(n), "{n}");
        }
        for n in ["COFFER_ADDR", "COFFER_CACERT", "COFFER_LOG", "TOKEN"] {
            assert!(!is_coffer_credential(n), "{n}");
        }
        let pair = |k: &str, v: &str| (k.into(), v.into());
        let (removed, copies) = credentials_to_remove(
            [
                pair("COFFER_TOKEN", "t"),
                pair("COFFER_INVITE_CODE", "i"),
                pair("COFFER_ADDR", "a"),
                pair("HOME", "/h"),
            ],
            true,
        );
        assert_eq!(removed, [std::ffi::OsString::from("COFFER_INVITE_CODE")]);
        assert!(copies.is_empty());
        // A copy of a token under another name goes too (kept with
        // --keep-token, like the token).
        let token = "cft_0123456789abcdefghijABCDEF";
        let inherited = || [pair("MYTOK", token), pair("HOME", "/h")];
        let (removed, copies) = credentials_to_remove(inherited(), false);
        assert_eq!(removed, [std::ffi::OsString::from("MYTOK")]);
        assert_eq!(copies, ["MYTOK"]);
        assert!(credentials_to_remove(inherited(), true).0.is_empty());
        // Not UTF-8 around it: still a copy.
        use std::os::unix::ffi::OsStringExt;
        let mut bytes = b"\xff".to_vec();
        bytes.extend_from_slice(token.as_bytes());
        let (removed, _) =
            credentials_to_remove([("RAW".into(), std::ffi::OsString::from_vec(bytes))], false);
        assert_eq!(removed, [std::ffi::OsString::from("RAW")]);
    }

    #[test]
    fn token_shapes() {
        let t = "cft_0123456789abcdefghijABCDEFGHIJabcdefghijXYZ012345";
        assert!(looks_like_token(t));
        assert!(looks_like_token(&format!("leak/{t}")));
        assert!(looks_like_token("x/cfi_0123456789abcdefXYZ"));
        assert!(!looks_like_token("app/dev/cft_name"));
        assert!(!looks_like_token("app/dev/DB"));
        assert_eq!(mask_tokens(&format!("leak/{t}/x")), "leak/cft_[masked]/x");
        assert_eq!(mask_tokens("a cfi_ b"), "a cfi_ b");
        // An app role's secret id is a credential like a token.
        let sid = "cfs_0123456789abcdefghijABCDEFGHIJabcdefghijXYZ012345";
        assert!(looks_like_token(sid));
        assert!(looks_like_token(&format!("SECRET={sid}")));
        assert!(!looks_like_token("app/dev/cfs_name"));
        assert_eq!(mask_tokens(&format!("leak/{sid}/x")), "leak/cfs_[masked]/x");
        let (removed, copies) = credentials_to_remove([("SID_COPY".into(), sid.into())], false);
        assert_eq!(removed, [std::ffi::OsString::from("SID_COPY")]);
        assert_eq!(copies, ["SID_COPY"]);
        // --keep-token keeps copies of the token, never a secret id or an
        // invitation code (either logs in on its own).
        let code = "cfi_0123456789abcdefghijABCDEFGHIJ";
        let token = "cft_0123456789abcdefghijABCDEFGHIJ";
        let (removed, copies) = credentials_to_remove(
            [
                ("SID_COPY".into(), sid.into()),
                ("CODE".into(), format!("x {code}").into()),
                ("TOK_COPY".into(), token.into()),
                ("HOME".into(), "/h".into()),
            ],
            true,
        );
        assert_eq!(
            removed,
            [
                std::ffi::OsString::from("SID_COPY"),
                std::ffi::OsString::from("CODE")
            ]
        );
        assert_eq!(copies, ["SID_COPY", "CODE"]);
    }

    #[test]
    fn paths_the_server_would_refuse_are_never_sent() {
        // Shapes the value check lets pass (upper case, a body cut short)
        // are still refused as paths: the server would refuse and record
        // them.
        for path in [
            "app/CFT_0123456789abcdefXYZ",
            "leak/cft_0123456789",
            "a/Cfi_x",
        ] {
            assert!(refuse_credential_paths("paths", [path]).is_err(), "{path}");
        }
        assert!(refuse_credential_paths("paths", ["app/dev/DB", "app/cft"]).is_ok());
    }
}
