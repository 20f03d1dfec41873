//! The native API's handlers (`/api/v1/`), and the router built from the
//! route table in `coffer_api::routes`: each handler is registered against
//! its table entry, so a route's method and path are written only there.
//!
//! Handlers are thin: extract, call one `Coffer` method, shape the answer.
//! Every decision about access is made in `coffer-core`.

mod access;
mod approle;
mod audit;
mod jwt;
mod leak;
mod lifecycle;
mod secrets;
pub(crate) mod shares;
mod sys;

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodFilter;
use coffer_api::routes::{self as table, Method, Route};

use crate::state::AppState;

pub use audit::filter_from;
pub(crate) use audit::{ReadersQuery, RecordsQuery, query_readers, query_records};

/// The OpenAPI description of this API, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Builds the router. `options.body_limit` caps request bodies (413 beyond
/// it); the rest says which requests reach a handler at all (see
/// [`crate::RouterOptions`]).
pub fn router(state: AppState, options: crate::RouterOptions) -> Router {
    let body_limit = options.body_limit;
    let mounts = crate::vault::MountsExt(Arc::new(options.vault_mounts.clone()));
    let app = handlers()
        .router
        .merge(crate::vault::routes().0)
        .merge(crate::ui::routes(options.console, options.tls))
        .route("/s/{id}", axum::routing::get(shares::page))
        .route("/s/assets/{file}", axum::routing::get(shares::asset))
        .fallback(sys::not_found)
        .method_not_allowed_fallback(sys::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(mounts))
        .layer(crate::request::RequestLayer {
            edge: Arc::new(crate::edge::Edge::new(options)),
            state: state.clone(),
        })
        .with_state(state);
    // Vault's `LIST` method becomes a marked `GET` before routing.
    Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(crate::vault::list_rewrite)
            .service(app),
    )
}

/// Every handler, against its entry in the route table.
fn handlers() -> Handlers {
    Handlers::default()
        // secrets
        .on(&table::SECRET_READ, secrets::read_secret)
        .on(&table::SECRET_WRITE, secrets::write_secret)
        .on(&table::SECRET_DELETE, secrets::delete_secret)
        .on(&table::SECRET_BUNDLE, secrets::bundle)
        .on(&table::SECRET_IMPORT, secrets::import)
        .on(&table::SECRET_HISTORY_IMPORT, secrets::import_history)
        .on(&table::SECRET_METADATA, secrets::metadata)
        .on(&table::SECRET_LIST_ROOT, secrets::list_root)
        .on(&table::SECRET_LIST, secrets::list_prefix)
        .on(
            &table::SECRET_UNDELETE,
            secrets::change_versions::<secrets::Undelete>,
        )
        .on(
            &table::SECRET_DESTROY,
            secrets::change_versions::<secrets::Destroy>,
        )
        .on(&table::SECRET_FINGERPRINTS, leak::fingerprints)
        .on(&table::SECRET_COMPROMISE, leak::compromise)
        // the secret lifecycle
        .on(&table::SECRET_ROTATE, lifecycle::rotate)
        .on(&table::SECRET_ROTATE_CANCEL, lifecycle::cancel)
        .on(&table::SECRET_PROMOTE, lifecycle::promote)
        .on(&table::POSTGRES_MANAGE, lifecycle::manage_postgres)
        .on(&table::POSTGRES_READ, lifecycle::postgres_info)
        .on(&table::SECRET_EXPIRY, lifecycle::expiry)
        .on(&table::SECRET_ROLLBACK, lifecycle::rollback)
        .on(&table::SECRET_COPY, lifecycle::copy)
        .on(&table::SECRET_PROMOTE_ENV, lifecycle::promote_env)
        .on(&table::ROTATION_STATUS_ROOT, lifecycle::status_root)
        .on(&table::ROTATION_STATUS, lifecycle::status_prefix)
        .on(&table::LIFECYCLE_LIST, lifecycle::list_rules)
        .on(&table::LIFECYCLE_SET, lifecycle::set_rule)
        .on(&table::LIFECYCLE_REMOVE, lifecycle::delete_rule)
        // the system
        .on(&table::SYS_HEALTH, sys::health)
        .on(&table::SYS_STATUS, sys::status)
        .on(&table::SYS_INIT, sys::init)
        .on(&table::SYS_UNSEAL, sys::unseal)
        .on(&table::SYS_SEAL, sys::seal)
        .on(&table::SYS_ROTATE, sys::rotate)
        .on(&table::SYS_KEYRING, sys::keyring)
        .on(&table::SYS_METRICS, sys::metrics)
        .on(&table::SYS_BACKUP, sys::backup)
        .on(&table::SYS_OPENAPI, sys::openapi)
        // the access model
        .on(&table::POLICY_LIST, access::list_policies)
        .on(&table::POLICY_READ, access::read_policy)
        .on(&table::POLICY_WRITE, access::write_policy)
        .on(&table::POLICY_DELETE, access::delete_policy)
        .on(&table::TOKEN_LIST, access::list_tokens)
        .on(&table::TOKEN_CREATE, access::create_token)
        .on(&table::TOKEN_LOOKUP, access::lookup_token)
        .on(&table::TOKEN_REVOKE, access::revoke_token)
        .on(&table::TOKEN_RENEW, access::renew_token)
        .on(&table::TOKEN_LOOKUP_SELF, access::lookup_self)
        .on(&table::TOKEN_REVOKE_SELF, access::revoke_self)
        .on(&table::TOKEN_RENEW_SELF, access::renew_self)
        .on(&table::AUTH_LOGIN, access::login)
        .on(&table::JWT_ROLE_LIST, jwt::list_roles)
        .on(&table::JWT_ROLE_READ, jwt::read_role)
        .on(&table::JWT_ROLE_WRITE, jwt::write_role)
        .on(&table::JWT_ROLE_DELETE, jwt::delete_role)
        .on(&table::AUTH_JWT_LOGIN, jwt::login)
        .on(&table::INVITE_CREATE, access::create_invite)
        .on(&table::INVITE_ACCEPT, access::accept_invite)
        .on(&table::TOTP_ENROLL, access::enroll_totp)
        .on(&table::TOTP_CONFIRM, access::confirm_totp)
        .on(&table::TOTP_DISABLE, access::disable_totp)
        .on(&table::USER_LIST, access::list_users)
        .on(&table::USER_READ, access::get_user)
        .on(&table::USER_UPDATE, access::update_user)
        .on(&table::USER_DELETE, access::delete_user)
        .on(&table::USER_DISABLE, access::disable_user)
        .on(&table::USER_ENABLE, access::enable_user)
        .on(&table::PROTECTED_LIST, access::list_protected)
        .on(&table::PROTECTED_ADD, access::protect)
        .on(&table::PROTECTED_REMOVE, access::unprotect)
        .on(&table::BREAKGLASS_LIST, access::list_breakglass)
        .on(&table::BREAKGLASS_GRANT, access::breakglass)
        // share links
        .on(&table::SHARE_CREATE, shares::create)
        .on(&table::SHARE_LIST, shares::list)
        .on(&table::SHARE_REVOKE, shares::revoke)
        .on(&table::SHARE_OPEN, shares::open)
        // app roles
        .on(&table::APPROLE_LOGIN, approle::login)
        .on(&table::APPROLE_LIST, approle::list)
        .on(&table::APPROLE_READ, approle::read)
        .on(&table::APPROLE_CREATE, approle::create)
        .on(&table::APPROLE_DELETE, approle::delete)
        .on(&table::APPROLE_SECRET_ID_CREATE, approle::create_secret_id)
        .on(&table::APPROLE_SECRET_ID_LIST, approle::list_secret_ids)
        .on(&table::APPROLE_SECRET_ID_REVOKE, approle::revoke_secret_id)
        // the audit log
        .on(&table::AUDIT_VERIFY, audit::verify)
        .on(&table::AUDIT_QUERY, audit::records)
        .on(&table::AUDIT_READERS, audit::readers)
        .on(&table::AUDIT_HASH, audit::hash)
        .on(&table::AUDIT_ROTATE, audit::rotate)
        .on(&table::AUDIT_ACKNOWLEDGE_GAP, audit::acknowledge_gap)
}

/// A router being built from the table, and the entries it has handlers
/// for (which a test holds against the whole table).
#[derive(Default)]
struct Handlers {
    router: Router<AppState>,
    registered: Vec<&'static Route>,
}

impl Handlers {
    /// Registers `handler` for `route`'s method on its path template.
    fn on<H, T>(mut self, route: &'static Route, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match route.method {
            Method::Get => MethodFilter::GET,
            Method::Put => MethodFilter::PUT,
            Method::Post => MethodFilter::POST,
            Method::Delete => MethodFilter::DELETE,
            Method::Patch => MethodFilter::PATCH,
        };
        self.router = self
            .router
            .route(route.path, axum::routing::on(filter, handler));
        self.registered.push(route);
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn key(r: &Route) -> (&'static str, &'static str) {
        (r.method.as_str(), r.path)
    }

    #[test]
    fn every_route_of_the_table_has_one_handler() {
        let registered = handlers().registered;
        let unique: BTreeSet<_> = registered.iter().map(|r| key(r)).collect();
        assert_eq!(unique.len(), registered.len(), "a route registered twice");
        let table: BTreeSet<_> = table::ALL.iter().map(|r| key(r)).collect();
        assert_eq!(unique, table);
    }

    /// The document's paths and methods, in the table's spelling.
    fn openapi_operations() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    ops.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    #[test]
    fn every_route_is_in_the_openapi_document_and_nothing_else_is() {
        let documented = openapi_operations();
        let routes: BTreeSet<(String, String)> = table::ALL
            .iter()
            .map(|r| (r.method.as_str().to_string(), r.openapi_path()))
            .collect();
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes the OpenAPI document lacks: {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routes).collect();
        assert!(
            unrouted.is_empty(),
            "OpenAPI operations with no route: {unrouted:?}"
        );
    }

    /// A server in this process, initialised and unsealed, auditing to a
    /// file in a temporary directory.
    struct Node {
        app: Router,
        log: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    const HOST: &str = "127.0.0.1:8270";

    async fn unsealed_node() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = coffer_store::SqliteStore::open(&dir.path().join("coffer.db")).unwrap();
        let coffer = Arc::new(
            coffer_core::Coffer::open(Arc::new(store), coffer_core::CoreOptions::default())
                .await
                .unwrap(),
        );
        let init = coffer.init(1, 1).await.unwrap();
        coffer
            .unseal(init.unseal_keys[0].expose_secret())
            .await
            .unwrap();
        let log = dir.path().join("audit.log");
        let key = coffer.clone();
        let (auditor, _alerts) = coffer_audit::Auditor::start(coffer_audit::AuditorConfig {
            sinks: vec![coffer_audit::SinkSpec::File(log.clone())],
            fsync: coffer_audit::Fsync::Interval(std::time::Duration::from_secs(1)),
            rules: coffer_audit::AlertRules::default(),
            key: Arc::new(move || key.audit_key()),
            rotation: coffer_audit::Rotation::default(),
        })
        .unwrap();
        let state = AppState::new(coffer, Arc::new(auditor));
        let app = router(
            state,
            crate::RouterOptions::new(1 << 20, HOST.parse().unwrap()),
        );
        Node {
            app,
            log,
            _dir: dir,
        }
    }

    /// Sends a request without a token or a body; the answer's status.
    async fn status_of(app: &Router, method: &str, uri: &str) -> u16 {
        use tower::ServiceExt;
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", HOST)
            .body(axum::body::Body::empty())
            .unwrap();
        app.clone().oneshot(req).await.unwrap().status().as_u16()
    }

    /// The operation of each request record in the log, in order.
    fn logged_ops(log: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|r| r["op"].as_str().map(str::to_string))
            .collect()
    }

    /// A URL for the route, its parameters filled with harmless values.
    fn sample_url(route: &Route) -> String {
        let params: Vec<&str> = route
            .path
            .match_indices('{')
            .map(|(i, _)| {
                if route.path[i..].starts_with("{*") {
                    "app/dev/KEY"
                } else {
                    "sample"
                }
            })
            .collect();
        route.url(&params)
    }

    /// The table is what the server does: each route's request is audited
    /// under the table's operation name (health and status not at all), a
    /// request that matches no route under the table's `UNMATCHED`, and a
    /// request without a token is refused with 401 exactly on the routes
    /// the table says need one.
    #[tokio::test]
    async fn the_router_audits_and_authenticates_as_the_table_says() {
        let node = unsealed_node().await;
        for route in table::ALL {
            let before = logged_ops(&node.log);
            let url = sample_url(route);
            let status = status_of(&node.app, route.method.as_str(), &url).await;
            let after = logged_ops(&node.log);
            let what = format!("{} {url} ({status})", route.method.as_str());
            if route.op.audited {
                assert_eq!(after.len(), before.len() + 1, "{what} is not audited");
                assert_eq!(after.last().unwrap(), route.op.name, "{what}");
            } else {
                assert_eq!(after.len(), before.len(), "{what} is audited");
            }
            let needs_token = route.op.requires != table::Requires::Nothing;
            assert_eq!(
                status == 401,
                needs_token,
                "{what}: the table says {:?}",
                route.op.requires
            );
        }
        for (method, url) in [
            ("GET", "/api/v1/no-such-route"),
            ("PATCH", table::SECRET_READ.path),
        ] {
            let status = status_of(&node.app, method, url).await;
            assert!(status == 404 || status == 405, "{method} {url}: {status}");
            assert_eq!(logged_ops(&node.log).last().unwrap(), table::UNMATCHED.name);
        }
    }
}
