//! Administration: the user list.

use mysql_async::prelude::*;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::guard::Ctx;
use super::respond::{page, PageError, PageResult};
use super::rows::UserLine;
use super::Params;
use crate::server::{Request, State};

/// Most users listed (the page says so when there are more).
pub const USERS_SHOWN: usize = 1000;

/// `GET /admin/users`: administrators only.
pub async fn users(st: &State, ctx: &Ctx, _req: &Request, _p: Params) -> PageResult {
    let user = ctx.require_user()?;
    if !user.is_admin {
        return Err(PageError::Forbidden(
            "Only administrators may list the users.",
        ));
    }
    let mut c = super::conn(st).await?;
    let mut rows: Vec<UserLine> = c
        .exec(
            "SELECT id, name, email, is_admin, DATE_FORMAT(created_at, '%Y-%m-%d') FROM users ORDER BY id DESC LIMIT ?",
            (USERS_SHOWN + 1,),
        )
        .await?;
    drop(c);
    let cut_off = super::cut_off(&mut rows, USERS_SHOWN);
    let users: Vec<Value> = rows
        .into_iter()
        .map(|u| json!({"id": u.id, "name": u.name, "email": u.email, "is_admin": u.is_admin, "created_at": u.created_at}))
        .collect();
    page(
        st,
        ctx,
        StatusCode::OK,
        "admin_users",
        "Users",
        json!({"users": users, "cut_off": cut_off}),
    )
}
