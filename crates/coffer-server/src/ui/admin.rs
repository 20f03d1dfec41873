//! The console's administration pages: users and invitations, policies,
//! protected environments and break-glass grants, rotation status.
//!
//! Each page and action calls the `Coffer` use case its API twin calls
//! (named in [`API_TWINS`]), as the session's identity: the core makes the
//! decision and notes it for the audit record, so a person gets here
//! exactly what `coffer user ...`, `coffer policy ...`, `coffer protected
//! ...`, `coffer breakglass` and `coffer rotation status` give them, and
//! every list is the use case's own (it already leaves out what a `deny`
//! hides). The one page without a twin is the break-glass request form,
//! which calls no use case: what it offers beyond the form (a link to the
//! live grants) is asked of the policy engine with `Coffer::may`, which
//! records nothing, so opening it is never a refusal. Every change is a POST with the session's form token, from
//! this origin; the ones that cannot be undone (removing a user, disabling
//! one, resetting their one-time codes, removing a protection) also need
//! the name typed again.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use coffer_core::{
    BreakglassRequest, CoreError, InviteRequest, NotFound, PolicyExpect, ROOT_POLICY,
};
use serde::Deserialize;

use super::pages::{
    Chrome, Signed, UiForm, api_error_page, encode_path, encode_query, error_page, none_if_empty,
    refused, render, see_other,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::UrlPath;
use crate::state::AppState;
use crate::timefmt::rfc3339;

/// Each administration route of the console and the API route whose use
/// case it calls: the console's operation is `ui.` followed by the API's,
/// so an audit query for one finds the other (checked by a test).
#[cfg(test)]
pub(crate) const API_TWINS: &[(&super::UiRoute, &coffer_api::routes::Route)] = {
    use coffer_api::routes as api;
    &[
        (&super::USERS, &api::USER_LIST),
        (&super::INVITE, &api::INVITE_CREATE),
        (&super::USER, &api::USER_READ),
        (&super::USER_DISABLE, &api::USER_DISABLE),
        (&super::USER_ENABLE, &api::USER_ENABLE),
        (&super::USER_UPDATE, &api::USER_UPDATE),
        (&super::USER_DELETE, &api::USER_DELETE),
        (&super::POLICIES, &api::POLICY_LIST),
        (&super::POLICY, &api::POLICY_READ),
        (&super::POLICY_WRITE, &api::POLICY_WRITE),
        (&super::POLICY_CREATE, &api::POLICY_WRITE),
        (&super::PROTECTED, &api::PROTECTED_LIST),
        (&super::PROTECT, &api::PROTECTED_ADD),
        (&super::UNPROTECT, &api::PROTECTED_REMOVE),
        (&super::BREAKGLASS_GRANTS, &api::BREAKGLASS_LIST),
        (&super::BREAKGLASS_GRANT, &api::BREAKGLASS_GRANT),
        (&super::ROTATION, &api::ROTATION_STATUS),
    ]
};

/// Percent-encodes one URL path segment (a user or policy name).
fn encode_segment(s: &str) -> String {
    encode_query(s).replace('/', "%2F")
}

/// A refusal of a change whose typed confirmation does not match: a 400
/// page, nothing changed.
fn unconfirmed(signed: &Signed, what: &str) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        coffer_api::codes::INVALID,
        &format!("Nothing was changed: type {what} exactly to confirm."),
        Some(signed.chrome()),
    )
}

/// A page answering with an API error's status and message.
fn failed(signed: &Signed, e: CoreError) -> Response {
    api_error_page(e.into(), Some(signed.chrome()))
}

/// Sets the audit record's error code on a page rendered for an error.
fn with_code(mut resp: Response, e: &ApiError) -> Response {
    resp.extensions_mut().insert(ErrorCode(e.code()));
    resp
}

/// What a refused form shows back of a field as typed: nothing, when it
/// holds something shaped like a coffer token (the core refuses those in
/// policies and labels; the answer must not carry one either).
fn echo(typed: &str) -> String {
    if coffer_policy::contains_credential(typed) {
        String::new()
    } else {
        typed.to_string()
    }
}

/// Splits a typed list of policy names (commas or spaces).
fn policy_names(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub(super) struct Confirmed {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

// ---- users and invitations -------------------------------------------------------

struct UserRow {
    name: String,
    href: String,
    policies: String,
    disabled: bool,
    totp: bool,
    created_at: String,
    invited_by: String,
    last_login: String,
}

impl From<coffer_core::UserView> for UserRow {
    fn from(u: coffer_core::UserView) -> Self {
        UserRow {
            href: encode_segment(&u.name),
            policies: u.policies.join(", "),
            disabled: u.disabled,
            totp: u.totp,
            created_at: rfc3339(u.created_at),
            invited_by: u.invited_by,
            last_login: u.last_login_at.map_or_else(|| "never".to_string(), rfc3339),
            name: u.name,
        }
    }
}

#[derive(Template)]
#[template(path = "ui/users.html")]
struct UsersPage {
    chrome: Option<Chrome>,
    users: Vec<UserRow>,
    error: Option<String>,
    policies: String,
    ttl: String,
}

pub(super) async fn users(State(st): State<AppState>, signed: Signed) -> Response {
    let users = match st.coffer.list_users(&signed.identity).await {
        Ok(u) => u,
        Err(e) => return failed(&signed, e),
    };
    render(
        StatusCode::OK,
        &UsersPage {
            chrome: Some(signed.chrome()),
            users: users.into_iter().map(UserRow::from).collect(),
            error: None,
            policies: String::new(),
            ttl: String::new(),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    policies: String,
    #[serde(default)]
    ttl: String,
}

/// Creates an invitation through the API's use case and shows its code on
/// the answer page, once: it is kept nowhere but in the core's keyed hash.
pub(super) async fn invite(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(form): UiForm<InviteForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    let request = InviteRequest {
        policies: policy_names(&form.policies),
        ttl: none_if_empty(Some(form.ttl.clone())),
    };
    match st.coffer.create_invite(&signed.identity, &request).await {
        Ok((code, expires_at)) => {
            // The page that shows the code must not list users afterwards:
            // that would make the record's decision the listing's. It is
            // rendered from what the invitation returned alone.
            render(
                StatusCode::OK,
                &InvitedPage {
                    chrome: Some(signed.chrome()),
                    // Borrowed, not copied: the only copy is the
                    // secret string, wiped when dropped.
                    code: code.expose_secret(),
                    expires_at: rfc3339(expires_at),
                    policies: request.policies.join(", "),
                },
            )
        }
        Err(e) => {
            let e = ApiError::from(e);
            let resp = render(
                e.status(),
                &UsersPage {
                    chrome: Some(signed.chrome()),
                    users: Vec::new(),
                    error: Some(e.message().to_string()),
                    policies: echo(&form.policies),
                    ttl: echo(&form.ttl),
                },
            );
            with_code(resp, &e)
        }
    }
}

#[derive(Template)]
#[template(path = "ui/invited.html")]
struct InvitedPage<'a> {
    chrome: Option<Chrome>,
    code: &'a str,
    expires_at: String,
    policies: String,
}

#[derive(Template)]
#[template(path = "ui/user.html")]
struct UserPage {
    chrome: Option<Chrome>,
    user: UserRow,
}

pub(super) async fn user(
    State(st): State<AppState>,
    signed: Signed,
    UrlPath(name): UrlPath,
) -> Response {
    match st.coffer.get_user(&signed.identity, &name).await {
        Ok(u) => render(
            StatusCode::OK,
            &UserPage {
                chrome: Some(signed.chrome()),
                user: u.into(),
            },
        ),
        Err(e) => failed(&signed, e),
    }
}

/// Whether the typed confirmation names the user: any spelling the core
/// accepts for the name (case, surrounding space) is the same user.
fn names_user(typed: &str, name: &str) -> bool {
    match (
        coffer_core::username::canonical_user_name(typed),
        coffer_core::username::canonical_user_name(name),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn user_href(name: &str) -> String {
    format!("/ui/users/{}", encode_segment(name))
}

pub(super) async fn user_disable(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UrlPath(name): UrlPath,
    UiForm(form): UiForm<Confirmed>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    if !names_user(&form.confirm, &name) {
        return unconfirmed(&signed, "the user's name");
    }
    match st
        .coffer
        .set_user_disabled(&signed.identity, &name, true)
        .await
    {
        Ok(u) => see_other(&user_href(&u.name)),
        Err(e) => failed(&signed, e),
    }
}

pub(super) async fn user_enable(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UrlPath(name): UrlPath,
    UiForm(form): UiForm<CsrfOnly>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    match st
        .coffer
        .set_user_disabled(&signed.identity, &name, false)
        .await
    {
        Ok(u) => see_other(&user_href(&u.name)),
        Err(e) => failed(&signed, e),
    }
}

#[derive(Deserialize)]
pub(super) struct UpdateForm {
    #[serde(default)]
    csrf: String,
    /// New policies (a typed list); absent to leave them.
    policies: Option<String>,
    /// `1` to turn off the user's one-time codes.
    #[serde(default)]
    reset_totp: String,
    #[serde(default)]
    confirm: String,
}

/// Changes a user's policies or resets their one-time codes (both revoke
/// their tokens, as `coffer user update`).
pub(super) async fn user_update(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UrlPath(name): UrlPath,
    UiForm(form): UiForm<UpdateForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    let reset_totp = form.reset_totp == "1";
    if reset_totp && !names_user(&form.confirm, &name) {
        return unconfirmed(&signed, "the user's name");
    }
    let policies = form.policies.as_deref().map(policy_names);
    match st
        .coffer
        .update_user(&signed.identity, &name, policies.as_deref(), reset_totp)
        .await
    {
        Ok(u) => see_other(&user_href(&u.name)),
        Err(e) => failed(&signed, e),
    }
}

pub(super) async fn user_delete(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UrlPath(name): UrlPath,
    UiForm(form): UiForm<Confirmed>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    if !names_user(&form.confirm, &name) {
        return unconfirmed(&signed, "the user's name");
    }
    match st.coffer.delete_user(&signed.identity, &name).await {
        Ok(()) => see_other("/ui/users"),
        Err(e) => failed(&signed, e),
    }
}

// ---- policies --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/policies.html")]
struct PoliciesPage {
    chrome: Option<Chrome>,
    policies: Vec<(String, String)>,
    name: String,
    source: String,
    error: Option<String>,
}

pub(super) async fn policies(State(st): State<AppState>, signed: Signed) -> Response {
    match st.coffer.list_policies(&signed.identity).await {
        Ok(names) => render(
            StatusCode::OK,
            &PoliciesPage {
                chrome: Some(signed.chrome()),
                policies: names.into_iter().map(|n| (encode_segment(&n), n)).collect(),
                name: String::new(),
                source: String::new(),
                error: None,
            },
        ),
        Err(e) => failed(&signed, e),
    }
}

/// One rule of a policy, as people read it.
struct RuleRow {
    pattern: String,
    grants: String,
    deny: bool,
}

fn rules_of(source: &str) -> Result<Vec<RuleRow>, String> {
    let policy = coffer_policy::Policy::parse_stored(source).map_err(|e| e.to_string())?;
    Ok(policy
        .rules()
        .iter()
        .map(|r| {
            let deny = r.capabilities.contains(coffer_policy::Capability::Deny);
            RuleRow {
                pattern: r.pattern.as_str().to_string(),
                grants: if deny {
                    "nothing: deny refuses every capability here, whatever other rules grant"
                        .to_string()
                } else {
                    r.capabilities
                        .iter()
                        .map(coffer_policy::Capability::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                deny,
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "ui/policy.html")]
struct PolicyPage {
    chrome: Option<Chrome>,
    name: String,
    href: String,
    builtin: bool,
    source: String,
    updated_by: String,
    updated_at: String,
    rules: Vec<RuleRow>,
    /// Users whose logins receive the policy; `None` when the viewer may
    /// not list users.
    holders: Option<Vec<(String, String)>>,
    error: Option<String>,
    /// The revision the edit form saves over (compare-and-set); empty
    /// when there is no stored policy to edit.
    revision: String,
}

/// The users who hold `name`, if the viewer may list users. Called before
/// the policy read, so that the read is the record's decision.
async fn holders(st: &AppState, signed: &Signed, name: &str) -> Option<Vec<(String, String)>> {
    let users = st.coffer.list_users(&signed.identity).await.ok()?;
    Some(
        users
            .into_iter()
            .filter(|u| u.policies.iter().any(|p| p == name))
            .map(|u| (encode_segment(&u.name), u.name))
            .collect(),
    )
}

pub(super) async fn policy(
    State(st): State<AppState>,
    signed: Signed,
    UrlPath(name): UrlPath,
) -> Response {
    // A name the read will refuse outright is not looked up among the
    // users: the record's decision must not be the listing's.
    let valid = name == ROOT_POLICY || coffer_policy::validate_policy_name(&name).is_ok();
    let holders = if valid {
        holders(&st, &signed, &name).await
    } else {
        None
    };
    let href = encode_segment(&name);
    let info = match st.coffer.read_policy(&signed.identity, &name).await {
        Ok(info) => info,
        Err(CoreError::NotFound(NotFound::BuiltInPolicy)) if name == ROOT_POLICY => {
            return render(
                StatusCode::OK,
                &PolicyPage {
                    chrome: Some(signed.chrome()),
                    name,
                    href,
                    builtin: true,
                    source: String::new(),
                    updated_by: String::new(),
                    updated_at: String::new(),
                    rules: Vec::new(),
                    holders,
                    error: None,
                    revision: String::new(),
                },
            );
        }
        Err(e) => return failed(&signed, e),
    };
    let (rules, error) = match rules_of(&info.source) {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    render(
        StatusCode::OK,
        &PolicyPage {
            chrome: Some(signed.chrome()),
            name: info.name,
            href,
            builtin: false,
            source: info.source,
            updated_by: info.updated_by,
            updated_at: rfc3339(info.updated_at),
            rules,
            holders,
            error,
            revision: info.revision.to_string(),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    source: String,
    /// The edit form's revision; absent or empty: the policy must not
    /// exist yet.
    #[serde(default)]
    revision: String,
}

/// Writes a policy through the API's use case, which parses it with the
/// same parser; a refusal comes back with the text as typed and the
/// parser's message (line and column).
async fn write_policy(
    st: &AppState,
    signed: &Signed,
    headers: &HeaderMap,
    name: &str,
    form: &PolicyForm,
    from_list: bool,
) -> Response {
    if let Err(why) = signed.check(headers, &form.csrf) {
        return refused(why);
    }
    // Browsers send a textarea's line breaks as CRLF.
    let source = form.source.replace("\r\n", "\n");
    // A create never replaces; an edit saves only over what it showed.
    let expect = match form.revision.trim() {
        "" => PolicyExpect::Absent,
        r => match r.parse::<u64>() {
            Ok(r) => PolicyExpect::Revision(r),
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    coffer_api::codes::INVALID,
                    "Nothing was changed: the form's revision is not a number; reload the page.",
                    Some(signed.chrome()),
                );
            }
        },
    };
    match st
        .coffer
        .write_policy_expecting(&signed.identity, name, &source, expect)
        .await
    {
        Ok(info) => see_other(&format!("/ui/policies/{}", encode_segment(&info.name))),
        Err(e) => {
            let e = ApiError::from(e);
            let message = Some(e.message().to_string());
            let resp = if from_list {
                render(
                    e.status(),
                    &PoliciesPage {
                        chrome: Some(signed.chrome()),
                        policies: Vec::new(),
                        name: echo(name),
                        source: echo(&source),
                        error: message,
                    },
                )
            } else {
                render(
                    e.status(),
                    &PolicyPage {
                        chrome: Some(signed.chrome()),
                        // A token-shaped name (refused by the core) is
                        // not repeated, not even in the form's action.
                        href: encode_segment(&echo(name)),
                        name: echo(name),
                        builtin: false,
                        source: echo(&source),
                        updated_by: String::new(),
                        updated_at: String::new(),
                        rules: Vec::new(),
                        holders: None,
                        error: message,
                        // Kept: after a conflict the person reloads.
                        revision: echo(form.revision.trim()),
                    },
                )
            };
            with_code(resp, &e)
        }
    }
}

pub(super) async fn policy_write(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UrlPath(name): UrlPath,
    UiForm(form): UiForm<PolicyForm>,
) -> Response {
    write_policy(&st, &signed, &headers, &name, &form, false).await
}

pub(super) async fn policy_create(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(form): UiForm<PolicyForm>,
) -> Response {
    let name = form.name.trim().to_string();
    write_policy(&st, &signed, &headers, &name, &form, true).await
}

// ---- protected environments and break-glass ----------------------------------------

#[derive(Template)]
#[template(path = "ui/protected.html")]
struct ProtectedPage {
    chrome: Option<Chrome>,
    protected: Vec<(String, String, String)>,
}

pub(super) async fn protected(State(st): State<AppState>, signed: Signed) -> Response {
    match st.coffer.list_protected(&signed.identity).await {
        Ok(list) => render(
            StatusCode::OK,
            &ProtectedPage {
                chrome: Some(signed.chrome()),
                protected: list
                    .into_iter()
                    .map(|p| (p.pattern, p.created_by, rfc3339(p.created_at)))
                    .collect(),
            },
        ),
        Err(e) => failed(&signed, e),
    }
}

#[derive(Deserialize)]
pub(super) struct PatternForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    confirm: String,
}

pub(super) async fn protect(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(form): UiForm<PatternForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    match st
        .coffer
        .protect(&signed.identity, form.pattern.trim())
        .await
    {
        Ok(_) => see_other("/ui/protected"),
        Err(e) => failed(&signed, e),
    }
}

pub(super) async fn unprotect(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(form): UiForm<PatternForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    if form.confirm.trim() != form.pattern.trim() || form.pattern.trim().is_empty() {
        return unconfirmed(&signed, "the pattern");
    }
    match st
        .coffer
        .unprotect(&signed.identity, form.pattern.trim())
        .await
    {
        Ok(()) => see_other("/ui/protected"),
        Err(e) => failed(&signed, e),
    }
}

struct GrantRow {
    /// Where the granted path is shown: its secret page, or the tree for
    /// a folder.
    href: String,
    user: String,
    path: String,
    reason: String,
    created_at: String,
    expires_at: String,
}

#[derive(Template)]
#[template(path = "ui/breakglass.html")]
struct BreakglassPage {
    chrome: Option<Chrome>,
    /// Live grants, on the grants page for whoever may list them.
    grants: Option<Vec<GrantRow>>,
    /// The grants page refused the viewer (as the API would).
    list_refused: bool,
    /// The viewer may list grants: the form links to them.
    may_list: bool,
    /// The grant just made.
    granted: Option<GrantRow>,
    path: String,
    reason: String,
    ttl: String,
    error: Option<String>,
}

fn grant_row(g: coffer_core::BreakglassGrant) -> GrantRow {
    GrantRow {
        href: if g.target.ends_with('/') {
            format!("/ui/?prefix={}", encode_query(&g.target))
        } else {
            format!("/ui/secret/{}", encode_path(&g.target))
        },
        user: g.user,
        path: g.target,
        reason: g.reason,
        created_at: rfc3339(g.created_at),
        expires_at: rfc3339(g.expires_at),
    }
}

/// Whether the person may list break-glass grants, asked of the policy
/// engine without a refused call: opening the request form is the
/// ordinary way to ask for a grant, and must not be recorded as a denial
/// (nor count towards a `failure_burst`) for everyone who may not list.
fn may_list_grants(st: &AppState, signed: &Signed) -> bool {
    st.coffer.may(
        &signed.identity,
        coffer_api::routes::Operation::Admin,
        BREAKGLASS_TARGET,
    )
}

/// What `GET /api/v1/sys/breakglass` requires `admin` on.
const BREAKGLASS_TARGET: &str = "sys/breakglass";

#[derive(Deserialize)]
pub(super) struct BreakglassQuery {
    path: Option<String>,
}

/// The request form (`?path=` prefills it), for any signed-in person; it
/// calls no use case. Whoever may list grants also gets a link to them.
pub(super) async fn breakglass(
    State(st): State<AppState>,
    signed: Signed,
    Query(q): Query<BreakglassQuery>,
) -> Response {
    render(
        StatusCode::OK,
        &BreakglassPage {
            chrome: Some(signed.chrome()),
            grants: None,
            list_refused: false,
            may_list: may_list_grants(&st, &signed),
            granted: None,
            path: none_if_empty(q.path).unwrap_or_default(),
            reason: String::new(),
            ttl: String::new(),
            error: None,
        },
    )
}

/// The live grants, as `GET /api/v1/sys/breakglass` lists them, above the
/// request form. A person who may not list grants gets the API's refusal,
/// a 403 page that still holds the form (the form's own page does not
/// link here for them).
pub(super) async fn breakglass_grants(State(st): State<AppState>, signed: Signed) -> Response {
    let grants = match st.coffer.list_breakglass(&signed.identity).await {
        Ok(g) => Some(g.into_iter().map(grant_row).collect()),
        Err(CoreError::Forbidden(_)) => None,
        Err(e) => return failed(&signed, e),
    };
    let status = if grants.is_some() {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    let resp = render(
        status,
        &BreakglassPage {
            chrome: Some(signed.chrome()),
            list_refused: grants.is_none(),
            grants,
            may_list: false,
            granted: None,
            path: String::new(),
            reason: String::new(),
            ttl: String::new(),
            error: None,
        },
    );
    if status == StatusCode::FORBIDDEN {
        with_code(
            resp,
            &ApiError::new(StatusCode::FORBIDDEN, coffer_api::codes::FORBIDDEN, ""),
        )
    } else {
        resp
    }
}

#[derive(Deserialize)]
pub(super) struct BreakglassForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ttl: String,
}

/// Grants the signed-in person a time-limited read, through the API's
/// use case (a reason, at most 4 hours, `breakglass` on the path, people
/// only; raised as an alert).
pub(super) async fn breakglass_grant(
    State(st): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    UiForm(form): UiForm<BreakglassForm>,
) -> Response {
    if let Err(why) = signed.check(&headers, &form.csrf) {
        return refused(why);
    }
    let request = BreakglassRequest {
        path: form.path.trim().to_string(),
        reason: form.reason.clone(),
        ttl: none_if_empty(Some(form.ttl.clone())),
    };
    let (status, granted, error, code) =
        match st.coffer.breakglass(&signed.identity, &request).await {
            Ok(g) => (StatusCode::OK, Some(grant_row(g)), None, None),
            Err(e) => {
                let e = ApiError::from(e);
                (e.status(), None, Some(e.message().to_string()), Some(e))
            }
        };
    let resp = render(
        status,
        &BreakglassPage {
            chrome: Some(signed.chrome()),
            grants: None,
            list_refused: false,
            may_list: may_list_grants(&st, &signed),
            granted,
            path: echo(&form.path),
            reason: if error.is_some() {
                echo(&form.reason)
            } else {
                String::new()
            },
            ttl: echo(&form.ttl),
            error,
        },
    );
    match code {
        Some(e) => with_code(resp, &e),
        None => resp,
    }
}

// ---- rotation status -------------------------------------------------------------

struct StatusRow {
    path: String,
    href: String,
    standing: &'static str,
    current: u64,
    pending: String,
    changed_at: String,
    every: String,
    due_at: String,
    automatic: bool,
    expires_at: String,
}

#[derive(Template)]
#[template(path = "ui/rotation.html")]
struct RotationPage {
    chrome: Option<Chrome>,
    prefix: String,
    rows: Vec<StatusRow>,
}

#[derive(Deserialize)]
pub(super) struct PrefixQuery {
    prefix: Option<String>,
}

/// `coffer rotation status`: the secrets under a prefix that have a
/// rotation interval, an expiry or a staged rotation, worst first, among
/// those whose metadata the viewer may see.
pub(super) async fn rotation(
    State(st): State<AppState>,
    signed: Signed,
    Query(q): Query<PrefixQuery>,
) -> Response {
    let prefix = none_if_empty(q.prefix).unwrap_or_default();
    let entries = match st.coffer.rotation_status(&signed.identity, &prefix).await {
        Ok(e) => e,
        Err(e) => return failed(&signed, e),
    };
    let dash = || "-".to_string();
    let rows = entries
        .into_iter()
        .map(|e| StatusRow {
            href: encode_path(&e.path),
            standing: e.standing.name(),
            current: e.current,
            pending: e.pending.map(|v| v.to_string()).unwrap_or_default(),
            changed_at: rfc3339(e.changed_at),
            every: e.rotate_every_ms.map_or_else(dash, |(ms, pattern)| {
                format!(
                    "{} ({pattern})",
                    coffer_core::duration::format_duration_ms(ms)
                )
            }),
            due_at: e.due_at.map_or_else(dash, rfc3339),
            automatic: e.automatic,
            expires_at: e.expires_at.map_or_else(dash, rfc3339),
            path: e.path,
        })
        .collect();
    render(
        StatusCode::OK,
        &RotationPage {
            chrome: Some(signed.chrome()),
            prefix,
            rows,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_console_operation_is_its_api_twins_under_ui() {
        for (ui, api) in API_TWINS {
            assert_eq!(ui.op.name, format!("ui.{}", api.op.name), "{}", ui.path);
            assert!(
                super::super::ROUTES.contains(ui),
                "{} is registered",
                ui.path
            );
        }
    }

    #[test]
    fn typed_policy_lists_split_on_commas_and_spaces() {
        assert_eq!(policy_names(" a, b  c,,"), ["a", "b", "c"]);
        assert!(policy_names(" , ").is_empty());
    }

    #[test]
    fn names_are_encoded_as_one_segment() {
        assert_eq!(encode_segment("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(encode_segment("ops-team"), "ops-team");
    }

    #[test]
    fn confirmations_name_the_user_in_any_spelling() {
        assert!(names_user("Ada", "ada"));
        assert!(!names_user("ad", "ada"));
        assert!(!names_user("", "ada"));
    }

    #[test]
    fn rules_read_as_grants() {
        let rules = rules_of(
            "path \"app/*\" { capabilities = [\"read\", \"list\"] }\npath \"app/prod/*\" { capabilities = [\"deny\"] }",
        )
        .unwrap();
        assert_eq!(rules[0].pattern, "app/*");
        assert_eq!(rules[0].grants, "read, list");
        assert!(rules[1].deny);
    }
}
