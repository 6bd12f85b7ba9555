//! Who is asking and whether a form may change anything: the per-request context (user, session,
//! CSRF cookie) and [`CsrfChecked`], the only way a state-changing handler receives its form.

use serde::de::DeserializeOwned;

use super::respond::PageError;
use crate::auth::{self, User};
use crate::server::{client_info, Request, State};

/// Per-request security context: the user, the session token and the CSRF cookie.
pub struct Ctx {
    /// The signed-in user.
    pub user: Option<User>,
    /// The session token (cookie value) of the signed-in user.
    pub session: Option<String>,
    /// The `bs_csrf` cookie (new when `set_csrf`).
    pub csrf_cookie: String,
    /// True when the CSRF cookie is new and must be sent.
    pub set_csrf: bool,
    /// True when the client reached us over TLS (trusted proxy).
    pub secure: bool,
    /// The client's address (trusted proxies believed).
    pub client_ip: std::net::IpAddr,
}

impl Ctx {
    /// The CSRF token forms on this page must carry.
    pub fn csrf(&self, st: &State) -> String {
        auth::csrf_token(
            &st.config.secret_key,
            &self.csrf_cookie,
            self.session.as_deref(),
        )
    }

    /// The signed-in user, or [`PageError::Login`].
    pub fn require_user(&self) -> Result<&User, PageError> {
        self.user.as_ref().ok_or(PageError::Login)
    }
}

/// Builds the context from the cookies; an unknown session is reported so its cookie is cleared.
pub async fn context(st: &State, req: &Request) -> Result<(Ctx, bool), PageError> {
    let (client_ip, secure) = client_info(st, req);
    let cookies = req.header("cookie").unwrap_or("");
    let (csrf_cookie, set_csrf) = match auth::cookie(cookies, auth::CSRF_COOKIE) {
        Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (v.to_string(), false)
        }
        _ => (crate::db::random_token(), true),
    };
    let mut ctx = Ctx {
        user: None,
        session: None,
        csrf_cookie,
        set_csrf,
        secure,
        client_ip,
    };
    let mut stale_session = false;
    if let Some(token) = auth::cookie(cookies, auth::SESSION_COOKIE) {
        let mut c = super::conn(st).await?;
        match auth::session_user(&mut c, token).await? {
            Some(u) => {
                ctx.user = Some(u);
                ctx.session = Some(token.to_string());
            }
            None => stale_session = true,
        }
    }
    Ok((ctx, stale_session))
}

/// A form a state-changing route accepts: parsed from the request body, carrying a CSRF field.
pub trait FormData: Sized + Send + 'static {
    /// How the body is encoded (and so how large it may be).
    const UPLOAD: bool;
    /// Parses the body.
    fn parse(
        st: &State,
        req: &Request,
    ) -> impl std::future::Future<Output = Result<Self, PageError>> + Send;
    /// The submitted CSRF token.
    fn csrf(&self) -> &str;
}

/// Implements [`FormData`] for a urlencoded form (a `Deserialize` struct with a `csrf` field).
macro_rules! url_form {
    ($t:ty) => {
        impl $crate::routes::guard::FormData for $t {
            const UPLOAD: bool = false;
            async fn parse(
                _st: &$crate::server::State,
                req: &$crate::server::Request,
            ) -> Result<Self, $crate::routes::respond::PageError> {
                $crate::routes::guard::urlencoded(req)
            }
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    };
}
pub(crate) use url_form;

/// Decodes a urlencoded body; a missing field takes its default, a malformed body is a 400.
pub fn urlencoded<T: DeserializeOwned>(req: &Request) -> Result<T, PageError> {
    serde_urlencoded::from_bytes::<T>(&req.body)
        .map_err(|e| PageError::BadRequest(format!("The form could not be read: {e}")))
}

/// A form whose CSRF token matched the cookie and session. Only [`check`] builds one, and the
/// route table gives POST routes nothing else, so a state-changing handler cannot skip the check.
pub struct CsrfChecked<F>(F);

impl<F> CsrfChecked<F> {
    /// The checked form.
    pub fn into_inner(self) -> F {
        self.0
    }
}

impl<F> std::ops::Deref for CsrfChecked<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.0
    }
}

/// Parses the form and checks its CSRF token against this request's cookie and session.
pub async fn check<F: FormData>(
    st: &State,
    ctx: &Ctx,
    req: &Request,
) -> Result<CsrfChecked<F>, PageError> {
    let form = F::parse(st, req).await;
    // A form we cannot read is refused as forged before its content is looked at.
    let csrf_ok = |submitted: &str| {
        !ctx.set_csrf
            && auth::csrf_ok(
                &st.config.secret_key,
                Some(&ctx.csrf_cookie),
                ctx.session.as_deref(),
                submitted,
            )
    };
    match form {
        Ok(f) if csrf_ok(f.csrf()) => Ok(CsrfChecked(f)),
        Ok(_) => Err(PageError::Csrf),
        Err(e) => Err(e),
    }
}
