//! Administration: the user list.

use mysql_async::prelude::*;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::guard::Ctx;
use super::respond::{page, PageError, PageResult};
use super::rows::UserLine;
use super::Params;
use crate::server::{Request, State};

/// `GET /admin/users`: administrators only.
pub async fn users(st: &State, ctx: &Ctx, _req: &Request, _p: Params) -> PageResult {
    let user = ctx.require_user()?;
    if !user.is_admin {
        return Err(PageError::Forbidden(
            "Only administrators may list the users.",
        ));
    }
    let mut c = super::conn(st).await?;
    let rows: Vec<UserLine> = c
        .exec(
            "SELECT id, name, email, is_admin, DATE_FORMAT(created_at, '%Y-%m-%d') FROM users ORDER BY id LIMIT 1000",
            (),
        )
        .await?;
    drop(c);
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
        json!({"users": users}),
    )
}
