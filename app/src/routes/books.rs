//! Selling: the seller's book form (multipart, with an optional cover), edit, delete, "My books".

use bytes::Bytes;
use mysql_async::prelude::*;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::catalog::book_card;
use super::guard::{url_form, CsrfChecked, Ctx, FormData};
use super::respond::{page, redirect, PageError, PageResult};
use super::rows::{money, parse_money, BookCard, BookEditable, BookOwner, BOOK_CARD_COLUMNS};
use super::Params;
use crate::auth::User;
use crate::db::DbConn;
use crate::server::{Request, State};
use crate::uploads;

/// The text fields of the book form, as typed (re-shown when refused).
#[derive(Default, serde::Serialize)]
pub struct BookFields {
    title: String,
    author: String,
    description: String,
    price: String,
    stock: String,
    /// The stock shown when the edit form was loaded: the save applies the difference.
    stock_loaded: String,
}

/// `POST /books/new` and `/books/{id}/edit`: multipart fields and an optional cover.
pub struct BookForm {
    csrf: String,
    fields: BookFields,
    cover: Option<(Option<String>, Bytes)>,
}

impl FormData for BookForm {
    const UPLOAD: bool = true;

    async fn parse(st: &State, req: &Request) -> Result<Self, PageError> {
        let ctype = req.header("content-type").unwrap_or("");
        let boundary = multer::parse_boundary(ctype)
            .map_err(|_| PageError::BadRequest("Expected a multipart/form-data form.".into()))?;
        let body = req.body.clone();
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
        let limit = st.max_body_bytes() as u64;
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(limit)
                .per_field(64 * 1024)
                .for_field("cover", limit),
        );
        let mut mp = multer::Multipart::with_constraints(stream, boundary, constraints);
        let mut form = BookForm {
            csrf: String::new(),
            fields: BookFields::default(),
            cover: None,
        };
        let unreadable =
            |e: multer::Error| PageError::BadRequest(format!("The form could not be read: {e}"));
        for _ in 0..32 {
            let Some(field) = mp.next_field().await.map_err(unreadable)? else {
                return Ok(form);
            };
            let name = field.name().unwrap_or("").to_string();
            let file_name = field.file_name().map(str::to_string);
            let data = field.bytes().await.map_err(unreadable)?;
            let text = || String::from_utf8_lossy(&data).trim().to_string();
            match name.as_str() {
                "cover" if !data.is_empty() => form.cover = Some((file_name, data)),
                "csrf" => form.csrf = text(),
                "title" => form.fields.title = text(),
                "author" => form.fields.author = text(),
                "description" => form.fields.description = text(),
                "price" => form.fields.price = text(),
                "stock" => form.fields.stock = text(),
                "stock_loaded" => form.fields.stock_loaded = text(),
                _ => {}
            }
        }
        Err(PageError::BadRequest(
            "The form has too many fields.".into(),
        ))
    }

    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /books/{id}/delete`.
#[derive(serde::Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}
url_form!(DeleteForm);

/// Checks that `user` sells the active book `book`; returns its current cover.
async fn seller_check(c: &mut DbConn, book: u64, user: &User) -> Result<Option<String>, PageError> {
    let row: Option<BookOwner> = c
        .exec_first(
            "SELECT seller_id, cover FROM books WHERE id = ? AND active",
            (book,),
        )
        .await?;
    match row {
        None => Err(PageError::NotFound),
        Some(b) if b.seller_id != user.id => Err(PageError::Forbidden(
            "Only the seller of this book may change it.",
        )),
        Some(b) => Ok(b.cover),
    }
}

fn form_page(
    st: &State,
    ctx: &Ctx,
    status: StatusCode,
    id: Option<u64>,
    fields: &BookFields,
    error: Option<&str>,
) -> PageResult {
    let (heading, action) = match id {
        None => ("Sell a book".to_string(), "/books/new".to_string()),
        Some(i) => ("Edit book".to_string(), format!("/books/{i}/edit")),
    };
    page(
        st,
        ctx,
        status,
        "book_form",
        &heading.clone(),
        json!({"form": fields, "heading": heading, "action": action, "error": error,
               "max_upload_mb": st.config.max_upload_mb, "max_side": uploads::MAX_SIDE}),
    )
}

/// `GET /books/new`.
pub async fn new_form(st: &State, ctx: &Ctx, _req: &Request, _p: Params) -> PageResult {
    ctx.require_user()?;
    let fields = BookFields {
        stock: "1".into(),
        ..Default::default()
    };
    form_page(st, ctx, StatusCode::OK, None, &fields, None)
}

/// `GET /books/{id}/edit`.
pub async fn edit_form(st: &State, ctx: &Ctx, _req: &Request, p: Params) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = super::conn(st).await?;
    seller_check(&mut c, p.id, user).await?;
    let b: BookEditable = c
        .exec_first(
            "SELECT title, author, description, price_cents, stock FROM books WHERE id = ?",
            (p.id,),
        )
        .await?
        .ok_or(PageError::NotFound)?;
    drop(c);
    let fields = BookFields {
        title: b.title,
        author: b.author,
        description: b.description,
        price: money(b.price_cents),
        stock: b.stock.to_string(),
        stock_loaded: b.stock.to_string(),
    };
    form_page(st, ctx, StatusCode::OK, Some(p.id), &fields, None)
}

/// `POST /books/new`.
pub async fn create(st: &State, ctx: &Ctx, form: CsrfChecked<BookForm>, _p: Params) -> PageResult {
    save(st, ctx, form.into_inner(), None).await
}

/// `POST /books/{id}/edit`.
pub async fn update(st: &State, ctx: &Ctx, form: CsrfChecked<BookForm>, p: Params) -> PageResult {
    save(st, ctx, form.into_inner(), Some(p.id)).await
}

/// The checked values of a book form.
struct Valid {
    price_cents: i64,
    stock: i32,
}

fn validate(f: &BookFields) -> Result<Valid, String> {
    if f.title.is_empty() || f.title.chars().count() > 200 {
        return Err("The title is required (at most 200 characters).".into());
    }
    if f.author.is_empty() || f.author.chars().count() > 200 {
        return Err("The author is required (at most 200 characters).".into());
    }
    if f.description.chars().count() > 5000 {
        return Err("The description is too long (at most 5000 characters).".into());
    }
    let price_cents = parse_money(&f.price)
        .ok_or_else(|| "The price must be an amount like 12.50.".to_string())?;
    let stock = f
        .stock
        .parse::<i32>()
        .ok()
        .filter(|s| (0..=1_000_000).contains(s))
        .ok_or_else(|| "The stock must be a whole number, 0 or more.".to_string())?;
    Ok(Valid { price_cents, stock })
}

async fn save(st: &State, ctx: &Ctx, form: BookForm, id: Option<u64>) -> PageResult {
    let user = ctx.require_user()?.clone();
    let mut c = super::conn(st).await?;
    let old_cover = match id {
        Some(i) => seller_check(&mut c, i, &user).await?,
        None => None,
    };
    let v = match validate(&form.fields) {
        Ok(v) => v,
        Err(msg) => {
            drop(c);
            return form_page(
                st,
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                id,
                &form.fields,
                Some(&msg),
            );
        }
    };
    // No connection is held while a cover is decoded and stored (seconds for a large one): that
    // time must not count as waiting on the database (`BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS`).
    drop(c);
    let mut new_cover = None;
    if let Some((name, data)) = &form.cover {
        let checked = match uploads::validate(name.as_deref(), data, st.config.max_upload_mb) {
            Ok(ext) => {
                let bytes = data.clone();
                tokio::task::spawn_blocking(move || uploads::decode_check(&bytes))
                    .await
                    .map_err(|e| anyhow::anyhow!("decoding a cover: {e}"))?
                    .map(|()| ext)
            }
            Err(e) => Err(e),
        };
        match checked {
            Ok(ext) => {
                let stored = uploads::store(&st.config.uploads_dir, ext, data)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("storing cover in {}: {e}", st.config.uploads_dir.display())
                    })?;
                new_cover = Some(stored);
            }
            Err(e) => {
                let code = match e {
                    uploads::CoverError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    uploads::CoverError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    uploads::CoverError::TooManyPixels => StatusCode::UNPROCESSABLE_ENTITY,
                    uploads::CoverError::BadName => StatusCode::BAD_REQUEST,
                };
                return form_page(st, ctx, code, id, &form.fields, Some(&e.to_string()));
            }
        }
    }
    let mut c = match super::conn(st).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(stored) = &new_cover {
                let _ = tokio::fs::remove_file(st.config.uploads_dir.join(stored)).await;
            }
            return Err(e);
        }
    };
    let f = &form.fields;
    let book_id = match id {
        None => {
            let res = c
                .exec_drop(
                    "INSERT INTO books (title, author, description, price_cents, stock, seller_id, cover) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (&f.title, &f.author, &f.description, v.price_cents, v.stock, user.id, &new_cover),
                )
                .await;
            if let Err(e) = res {
                // The book was not saved: its cover must not stay behind.
                if let Some(stored) = &new_cover {
                    let _ = tokio::fs::remove_file(st.config.uploads_dir.join(stored)).await;
                }
                return Err(e.into());
            }
            c.last_insert_id()
                .ok_or_else(|| anyhow::anyhow!("no id for the new book"))?
        }
        Some(i) => {
            let delta = match f.stock_loaded.parse::<i32>() {
                Ok(loaded) => Some(v.stock - loaded),
                Err(_) => None,
            };
            if let Err(e) = update_book(&mut c, i, user.id, f, &v, delta, &new_cover).await {
                drop(c);
                if let Some(stored) = &new_cover {
                    let _ = tokio::fs::remove_file(st.config.uploads_dir.join(stored)).await;
                }
                return match e {
                    PageError::Conflict(msg) => {
                        form_page(st, ctx, StatusCode::CONFLICT, id, &form.fields, Some(&msg))
                    }
                    e => Err(e),
                };
            }
            if let (Some(_), Some(old)) = (&new_cover, old_cover) {
                if uploads::is_stored_name(&old) {
                    let _ = tokio::fs::remove_file(st.config.uploads_dir.join(old)).await;
                }
            }
            i
        }
    };
    st.catalog_cache.invalidate();
    Ok(redirect(&format!("/books/{book_id}")))
}

/// Saves an edit. With `delta` (the form carried the stock it showed) the stock changes by the
/// seller's difference, so sales made since the form was loaded stay sold; a difference that
/// would take the stock below zero means the form is stale and is refused. Without it (a script
/// that omits `stock_loaded`) the stock is set as given.
async fn update_book(
    c: &mut DbConn,
    id: u64,
    seller: u64,
    f: &BookFields,
    v: &Valid,
    delta: Option<i32>,
    new_cover: &Option<String>,
) -> Result<(), PageError> {
    let mut tx = c.start_transaction(Default::default()).await?;
    let current: Option<i32> = tx
        .exec_first(
            "SELECT stock FROM books WHERE id = ? AND seller_id = ? AND active FOR UPDATE",
            (id, seller),
        )
        .await?;
    let current = current.ok_or(PageError::NotFound)?;
    let stock = match delta {
        Some(d) => current + d,
        None => v.stock,
    };
    if !(0..=1_000_000).contains(&stock) {
        tx.rollback().await?;
        return Err(PageError::Conflict(format!(
            "Copies were sold since you opened this form: {current} are left now, so the stock \
             cannot change by {}. Reload the form and try again.",
            delta.unwrap_or(0)
        )));
    }
    tx.exec_drop(
        "UPDATE books SET title = ?, author = ?, description = ?, price_cents = ?, stock = ?, cover = COALESCE(?, cover) WHERE id = ? AND seller_id = ?",
        (&f.title, &f.author, &f.description, v.price_cents, stock, new_cover, id, seller),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /books/{id}/delete`: hides the book (purchases keep referring to it).
pub async fn delete(
    st: &State,
    ctx: &Ctx,
    _form: CsrfChecked<DeleteForm>,
    p: Params,
) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = super::conn(st).await?;
    seller_check(&mut c, p.id, user).await?;
    c.exec_drop(
        "UPDATE books SET active = FALSE WHERE id = ? AND seller_id = ?",
        (p.id, user.id),
    )
    .await?;
    st.catalog_cache.invalidate();
    Ok(redirect("/my/books"))
}

/// `GET /my/books`.
pub async fn my_books(st: &State, ctx: &Ctx, _req: &Request, _p: Params) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = super::conn(st).await?;
    let mut rows: Vec<BookCard> = c
        .exec(
            format!("SELECT {BOOK_CARD_COLUMNS} FROM books WHERE seller_id = ? AND active ORDER BY id DESC LIMIT ?"),
            (user.id, MY_BOOKS_SHOWN + 1),
        )
        .await?;
    drop(c);
    let cut_off = super::cut_off(&mut rows, MY_BOOKS_SHOWN);
    let books: Vec<Value> = rows.into_iter().map(book_card).collect();
    page(
        st,
        ctx,
        StatusCode::OK,
        "my_books",
        "My books",
        json!({"books": books, "cut_off": cut_off}),
    )
}

/// Most books listed on "My books" (the page says so when there are more).
pub const MY_BOOKS_SHOWN: usize = 500;
