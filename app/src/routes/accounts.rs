//! Accounts: register, log in (throttled), log out.

use mysql_async::prelude::*;
use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};

use super::guard::{url_form, CsrfChecked, Ctx};
use super::respond::{page, redirect, PageResult};
use super::rows::Credentials;
use super::Params;
use crate::auth;
use crate::server::{Request, State};

/// `POST /register`.
#[derive(serde::Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}
url_form!(RegisterForm);

/// `POST /login`.
#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}
url_form!(LoginForm);

/// `POST /logout`.
#[derive(serde::Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}
url_form!(LogoutForm);

fn register_form(
    st: &State,
    ctx: &Ctx,
    name: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    page(
        st,
        ctx,
        status,
        "register",
        "Register",
        json!({"name": name, "email": email, "error": error}),
    )
}

fn login_form(
    st: &State,
    ctx: &Ctx,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    page(
        st,
        ctx,
        status,
        "login",
        "Log in",
        json!({"email": email, "error": error}),
    )
}

/// `GET /register`.
pub async fn register_page(st: &State, ctx: &Ctx, _req: &Request, _p: Params) -> PageResult {
    register_form(st, ctx, "", "", None, StatusCode::OK)
}

/// `GET /login`.
pub async fn login_page(st: &State, ctx: &Ctx, _req: &Request, _p: Params) -> PageResult {
    login_form(st, ctx, "", None, StatusCode::OK)
}

/// A redirect home that sets the session cookie.
fn start_session(ctx: &Ctx, token: &str) -> PageResult {
    let mut r = redirect("/");
    let c = auth::set_cookie(
        auth::SESSION_COOKIE,
        token,
        i64::from(auth::SESSION_DAYS) * 86400,
        ctx.secure,
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// A plausible e-mail address: something@domain.tld, no spaces, at most 255 bytes.
fn valid_email(email: &str) -> bool {
    email.len() <= 255
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.starts_with('.'))
        && !email.contains(char::is_whitespace)
}

/// The one answer to a registration refused for a taken address or a throttled client.
pub const REFUSED: &str = "We could not register this e-mail address. If it is yours, log in \
     instead; after many attempts, wait 15 minutes and try again.";

/// `POST /register`: creates the account and signs it in.
pub async fn register(
    st: &State,
    ctx: &Ctx,
    form: CsrfChecked<RegisterForm>,
    _p: Params,
) -> PageResult {
    let f = form.into_inner();
    let name = f.name.trim();
    let email = f.email.trim().to_lowercase();
    let bad = |msg: &str| {
        register_form(
            st,
            ctx,
            name,
            &email,
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    if name.is_empty() || name.chars().count() > 100 {
        return bad("Please enter your name (at most 100 characters).");
    }
    if !valid_email(&email) {
        return bad("Please enter a valid email address.");
    }
    if f.password.chars().count() < 8 || f.password.len() > 1024 {
        return bad("The password must have at least 8 characters.");
    }
    // Hashing is the expensive part: shed the request when too many already wait for it. The
    // password is hashed before anything is known about the address, so a refusal takes as
    // long as a registration.
    let slot = st.hashing.slot().ok_or_else(super::busy)?;
    let hash = auth::hash_password(f.password).await?;
    drop(slot);
    // A taken address and a throttled client get one and the same answer (`refused`), so the
    // form does not say which addresses have accounts; a client is throttled after
    // MAX_REGISTER_REFUSALS_PER_IP refusals (counted before the insert, forgiven on success).
    let refused = || {
        register_form(
            st,
            ctx,
            name,
            &email,
            Some(REFUSED),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let ip_key = format!("register-ip:{}", ctx.client_ip);
    let mut c = super::conn(st).await?;
    if !auth::count_attempt(&mut c, &ip_key, auth::MAX_REGISTER_REFUSALS_PER_IP).await? {
        return refused();
    }
    let res = c
        .exec_drop(
            "INSERT INTO users (name, email, password_hash) VALUES (?, ?, ?)",
            (name, &email, hash),
        )
        .await;
    match res {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => return refused(),
        Err(e) => return Err(e.into()),
    }
    let user_id = c
        .last_insert_id()
        .ok_or_else(|| anyhow::anyhow!("no id for the new user"))?;
    auth::forgive_attempt(&mut c, &ip_key).await?;
    let token = auth::create_session(&mut c, user_id).await?;
    // Registering while signed in ends the old session: one browser, one account.
    if let Some(old) = &ctx.session {
        auth::delete_session(&mut c, old).await?;
    }
    start_session(ctx, &token)
}

async fn dummy_hash() -> &'static str {
    static H: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    H.get_or_init(|| async {
        auth::hash_password("not a real password".into())
            .await
            .unwrap_or_default()
    })
    .await
}

/// `POST /login`: throttled per e-mail and per client address.
pub async fn login(st: &State, ctx: &Ctx, form: CsrfChecked<LoginForm>, _p: Params) -> PageResult {
    let f = form.into_inner();
    let email = f.email.trim().to_lowercase();
    let email_key = format!("email:{}", email.chars().take(255).collect::<String>());
    let ip_key = format!("ip:{}", ctx.client_ip);
    // Count the attempt first: a burst cannot all pass the check before any failure is recorded.
    let mut c = super::conn(st).await?;
    let email_ok = auth::count_attempt(&mut c, &email_key, auth::MAX_FAILURES_PER_EMAIL).await?;
    let ip_ok = auth::count_attempt(&mut c, &ip_key, auth::MAX_FAILURES_PER_IP).await?;
    if !(email_ok && ip_ok) {
        drop(c);
        return login_form(
            st,
            ctx,
            &email,
            Some("Too many failed attempts. Wait 15 minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let row: Option<Credentials> = c
        .exec_first(
            "SELECT id, password_hash FROM users WHERE email = ?",
            (&email,),
        )
        .await?;
    // No pooled connection is held while the password waits for the hashing queue.
    drop(c);
    let slot = st.hashing.slot().ok_or_else(super::busy)?;
    let ok = match &row {
        Some(u) => auth::verify_password(f.password, u.password_hash.clone()).await,
        None => {
            auth::verify_password(f.password, dummy_hash().await.to_string()).await;
            false
        }
    };
    drop(slot);
    match (ok, row) {
        (true, Some(u)) => {
            let mut c = super::conn(st).await?;
            auth::clear_failures(&mut c, &email_key).await?;
            auth::forgive_attempt(&mut c, &ip_key).await?;
            let token = auth::create_session(&mut c, u.id).await?;
            if let Some(old) = &ctx.session {
                auth::delete_session(&mut c, old).await?;
            }
            start_session(ctx, &token)
        }
        _ => login_form(
            st,
            ctx,
            &email,
            Some("Wrong email or password."),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

/// `POST /logout`: ends the session.
pub async fn logout(
    st: &State,
    ctx: &Ctx,
    _form: CsrfChecked<LogoutForm>,
    _p: Params,
) -> PageResult {
    if let Some(token) = &ctx.session {
        let mut c = super::conn(st).await?;
        auth::delete_session(&mut c, token).await?;
    }
    let mut r = redirect("/");
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(auth::SESSION_COOKIE, "", 0, ctx.secure))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}
