//! The console's actions on secrets beyond reading and writing one: roll
//! back to an earlier version, and compare two environments of an app
//! (names only) with a preview of what promoting one into the other would
//! create or update.
//!
//! Each calls the use case the CLI's command calls (`coffer rollback`,
//! `coffer env promote`), with the session's identity, and each change is
//! audited under the API's own operation (`secret.rollback`,
//! `secret.promote_env`). Values never reach these pages: the comparison
//! is made on the server (in constant time) and the page shows names and
//! version numbers only.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use coffer_core::{PlanAction, PlanEntry};
use serde::Deserialize;

use super::pages::{
    Chrome, Signed, UiForm, api_error_page, encode_path, encode_query, error_page, none_if_empty,
    refused, render, see_other,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::timefmt::rfc3339;

// ---- rollback ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/rollback.html")]
struct RollbackPage {
    chrome: Option<Chrome>,
    path: String,
    href: String,
    version: u64,
    current_version: u64,
    written: String,
    by: String,
}

#[derive(Deserialize)]
pub(super) struct VersionQuery {
    version: Option<String>,
}

fn parse_version(v: Option<&str>) -> Result<u64, ApiError> {
    v.map(str::trim)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::invalid("the version must be a positive whole number"))
}

/// The confirmation step: which version, written when and by whom, and
/// what rolling back does. Nothing changes until its form is posted.
pub(super) async fn rollback_form(
    State(st): State<AppState>,
    signed: Signed,
    crate::extract::UrlPath(path): crate::extract::UrlPath,
    Query(q): Query<VersionQuery>,
) -> Response {
    let version = match parse_version(q.version.as_deref()) {
        Ok(v) => v,
        Err(e) => return api_error_page(e, Some(signed.chrome())),
    };
    let md = match st.coffer.metadata(&signed.identity, &path).await {
        Ok(md) => md,
        Err(e) => return api_error_page(e.into(), Some(signed.chrome())),
    };
    let Some(v) = md.versions.iter().find(|v| v.version == version) else {
        return error_page(
            StatusCode::NOT_FOUND,
            coffer_api::codes::NOT_FOUND,
            "That version does not exist.",
            Some(signed.chrome()),
        );
    };
    render(
        StatusCode::OK,
        &RollbackPage {
            chrome: Some(signed.chrome()),
            href: encode_path(&md.meta.path),
            path: md.meta.path.clone(),
            version,
            current_version: md.meta.current_version,
            written: rfc3339(v.created_at),
            by: v.created_by.name.clone(),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct RollbackForm {
    #[serde(default)]
    csrf: String,
    version: Option<String>,
}

/// Rolls back: the form's token and this origin, then the core's
/// `rollback` (needs `read` and `update`; refuses a compromised,
/// deleted or destroyed version), audited as `secret.rollback`.
pub(super) async fn rollback(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    crate::extract::UrlPath(path): crate::extract::UrlPath,
    UiForm(form): UiForm<RollbackForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    let version = match parse_version(form.version.as_deref()) {
        Ok(v) => v,
        Err(e) => return api_error_page(e, Some(signed.chrome())),
    };
    match st.coffer.rollback(&signed.identity, &path, version).await {
        Ok(r) => see_other(&format!("/ui/secret/{}", encode_path(&r.path))),
        Err(e) => api_error_page(e.into(), Some(signed.chrome())),
    }
}

// ---- environments --------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/env.html")]
struct EnvPage {
    chrome: Option<Chrome>,
    app: String,
    a: String,
    b: String,
    compared: bool,
    /// Names only in A (a promotion creates them in B).
    only_a: Vec<(String, u64)>,
    /// Names only in B (a promotion leaves them alone).
    only_b: Vec<(String, u64)>,
    /// Names in both with different values (a promotion updates B's).
    differ: Vec<(String, u64, u64)>,
    /// Names in both with the same value.
    same: Vec<String>,
    /// The preview's plan, for the promote form (checked again on apply).
    plan: String,
    changes: usize,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct EnvQuery {
    app: Option<String>,
    a: Option<String>,
    b: Option<String>,
}

fn prefix_of(app: &str, env: &str) -> String {
    format!("{}/{}/", app.trim_matches('/'), env.trim_matches('/'))
}

fn plan_text(plan: &[PlanEntry]) -> String {
    serde_json::to_string(plan).expect("a plan serialises")
}

fn env_page(signed: &Signed, app: String, a: String, b: String) -> EnvPage {
    EnvPage {
        chrome: Some(signed.chrome()),
        app,
        a,
        b,
        compared: false,
        only_a: Vec::new(),
        only_b: Vec::new(),
        differ: Vec::new(),
        same: Vec::new(),
        plan: String::new(),
        changes: 0,
        error: None,
    }
}

/// The comparison of two environments: the preview of `coffer env promote
/// APP/A APP/B` (the same use case; names the caller cannot list are not
/// in it), shown as names only in A, only in B, and in both with different
/// or equal values.
pub(super) async fn env(
    State(st): State<AppState>,
    signed: Signed,
    Query(q): Query<EnvQuery>,
) -> Response {
    let app = none_if_empty(q.app).unwrap_or_default();
    let a = none_if_empty(q.a).unwrap_or_default();
    let b = none_if_empty(q.b).unwrap_or_default();
    let mut page = env_page(&signed, app.clone(), a.clone(), b.clone());
    if app.is_empty() || a.is_empty() || b.is_empty() {
        return render(StatusCode::OK, &page);
    }
    let (from, to) = (prefix_of(&app, &a), prefix_of(&app, &b));
    let plan = match st
        .coffer
        .promote_env(&signed.identity, &from, &to, None)
        .await
    {
        Ok((plan, _)) => plan,
        Err(e) => {
            let e = ApiError::from(e);
            page.error = Some(e.message().to_string());
            let mut resp = render(e.status(), &page);
            resp.extensions_mut()
                .insert(crate::error::ErrorCode(e.code()));
            return resp;
        }
    };
    page.compared = true;
    for e in &plan {
        match e.action {
            PlanAction::Create => page.only_a.push((e.name.clone(), e.from_version)),
            PlanAction::OnlyInTarget => page.only_b.push((e.name.clone(), e.to_version)),
            PlanAction::Update => page
                .differ
                .push((e.name.clone(), e.from_version, e.to_version)),
            PlanAction::Unchanged => page.same.push(e.name.clone()),
        }
    }
    page.changes = page.only_a.len() + page.differ.len();
    page.plan = plan_text(&plan);
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub(super) struct PromoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    a: String,
    #[serde(default)]
    b: String,
    #[serde(default)]
    plan: String,
    /// The confirmation box.
    confirm: Option<String>,
}

/// Applies the previewed plan through the same use case (`coffer env
/// promote --yes`): a plan that no longer matches what is stored is a
/// conflict and writes nothing.
pub(super) async fn promote(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(form): UiForm<PromoteForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    if form.confirm.as_deref() != Some("yes") {
        return api_error_page(
            ApiError::invalid("tick the box to confirm the promotion"),
            Some(signed.chrome()),
        );
    }
    let plan: Vec<PlanEntry> = match serde_json::from_str(&form.plan) {
        Ok(p) => p,
        Err(_) => {
            return api_error_page(
                ApiError::invalid("the preview could not be read; compare again"),
                Some(signed.chrome()),
            );
        }
    };
    let (from, to) = (prefix_of(&form.app, &form.a), prefix_of(&form.app, &form.b));
    match st
        .coffer
        .promote_env(&signed.identity, &from, &to, Some(&plan))
        .await
    {
        Ok(_) => see_other(&format!(
            "/ui/env?app={}&a={}&b={}",
            encode_query(&form.app),
            encode_query(&form.a),
            encode_query(&form.b)
        )),
        Err(e) => api_error_page(e.into(), Some(signed.chrome())),
    }
}
