//! Buying: reserve copies (buy), pay, choose a courier, and the buyer's order list.

use mysql_async::prelude::*;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::catalog::MAX_QUANTITY;
use super::guard::{url_form, CsrfChecked, Ctx};
use super::respond::{page, page_flash, redirect, PageError, PageResult};
use super::rows::{money, Lapsed, OrderLine, Provider, Purchase};
use super::Params;
use crate::auth::User;
use crate::db::DbConn;
use crate::server::{Request, State};

/// `POST /books/{id}/buy`.
#[derive(serde::Deserialize)]
pub struct BuyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    quantity: String,
}
url_form!(BuyForm);

/// `POST /purchases/{id}/pay`.
#[derive(serde::Deserialize)]
pub struct PayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    method: Option<String>,
}
url_form!(PayForm);

/// `POST /purchases/{id}/delivery`.
#[derive(serde::Deserialize)]
pub struct DeliveryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    provider_id: String,
}
url_form!(DeliveryForm);

/// `POST /books/{id}/buy`: takes the copies with a guarded UPDATE and creates a pending purchase.
pub async fn buy(st: &State, ctx: &Ctx, form: CsrfChecked<BuyForm>, p: Params) -> PageResult {
    let user = ctx.require_user()?;
    let book = p.id;
    // Only the quantity comes from the browser; price and total come from the database.
    let qty = match form.quantity.trim() {
        "" => 1,
        q => q
            .parse::<u32>()
            .ok()
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                PageError::BadRequest(format!(
                    "The quantity must be between 1 and {MAX_QUANTITY}."
                ))
            })?,
    };
    let mut c = super::conn(st).await?;
    let mut purchase = reserve(st, &mut c, user, book, qty).await?;
    if purchase.is_none() && expire_reservations(&mut c).await? > 0 {
        // Lapsed reservations just returned copies: try once more.
        purchase = reserve(st, &mut c, user, book, qty).await?;
    }
    let Some(purchase) = purchase else {
        return Err(PageError::Conflict(
            "Sorry, there are not enough copies left of this book.".into(),
        ));
    };
    st.catalog_cache.invalidate();
    Ok(redirect(&format!("/purchases/{purchase}/pay")))
}

/// Takes `qty` copies and creates a pending purchase reserved for `BOOKSTORE_RESERVATION_MINUTES`;
/// None when not enough copies are left.
async fn reserve(
    st: &State,
    c: &mut DbConn,
    user: &User,
    book: u64,
    qty: u32,
) -> Result<Option<u64>, PageError> {
    let mut tx = c.start_transaction(Default::default()).await?;
    // A seller cannot buy their own book (the page hides the button; this is the rule).
    tx.exec_drop(
        "UPDATE books SET stock = stock - ? WHERE id = ? AND active AND stock >= ? AND seller_id <> ?",
        (qty, book, qty, user.id),
    )
    .await?;
    if tx.affected_rows() != 1 {
        let exists: Option<u64> = tx
            .exec_first(
                "SELECT seller_id FROM books WHERE id = ? AND active",
                (book,),
            )
            .await?;
        tx.rollback().await?;
        return match exists {
            None => Err(PageError::NotFound),
            Some(seller) if seller == user.id => {
                Err(PageError::Forbidden("You cannot buy your own book."))
            }
            Some(_) => Ok(None),
        };
    }
    let price: Option<i64> = tx
        .exec_first("SELECT price_cents FROM books WHERE id = ?", (book,))
        .await?;
    let price = price.ok_or(PageError::NotFound)?;
    tx.exec_drop(
        "INSERT INTO purchases (user_id, book_id, quantity, total_cents, status, reserved_until) \
         VALUES (?, ?, ?, ?, 'pending', NOW() + INTERVAL ? SECOND)",
        (
            user.id,
            book,
            qty,
            price * i64::from(qty),
            st.config.reservation.as_secs(),
        ),
    )
    .await?;
    let purchase = tx
        .last_insert_id()
        .ok_or_else(|| anyhow::anyhow!("no id for the purchase"))?;
    tx.commit().await?;
    Ok(Some(purchase))
}

/// Expires unpaid purchases whose reservation lapsed and returns their copies to the stock,
/// each in its own transaction (safe with many instances); returns how many expired.
pub async fn expire_reservations(c: &mut DbConn) -> Result<u64, mysql_async::Error> {
    let lapsed: Vec<Lapsed> = c
        .exec(
            "SELECT id, book_id, quantity FROM purchases \
             WHERE status = 'pending' AND reserved_until <= NOW() ORDER BY id LIMIT 500",
            (),
        )
        .await?;
    let mut expired = 0;
    for p in lapsed {
        let mut tx = c.start_transaction(Default::default()).await?;
        tx.exec_drop(
            "UPDATE purchases SET status = 'expired' \
             WHERE id = ? AND status = 'pending' AND reserved_until <= NOW()",
            (p.id,),
        )
        .await?;
        if tx.affected_rows() == 1 {
            tx.exec_drop(
                "UPDATE books SET stock = stock + ? WHERE id = ?",
                (p.quantity, p.book_id),
            )
            .await?;
            expired += 1;
        }
        tx.commit().await?;
    }
    Ok(expired)
}

/// The buyer's own purchase `id` (someone else's looks exactly like a missing one).
async fn my_purchase(c: &mut DbConn, user: &User, id: u64) -> Result<Purchase, PageError> {
    let row: Option<Purchase> = c
        .exec_first(
            "SELECT p.id, p.book_id, b.title, p.quantity, p.total_cents, p.status, p.user_id, \
             DATE_FORMAT(p.reserved_until, '%Y-%m-%d %H:%i:%s') \
             FROM purchases p JOIN books b ON b.id = p.book_id WHERE p.id = ?",
            (id,),
        )
        .await?;
    row.filter(|p| p.user_id == user.id)
        .ok_or(PageError::NotFound)
}

fn order_json(o: &Purchase) -> Value {
    json!({"id": o.id, "book_id": o.book_id, "title": o.title, "quantity": o.quantity,
           "total": money(o.total_cents), "reserved_until": o.reserved_until})
}

/// `GET /purchases/{id}/pay`.
pub async fn pay_page(st: &State, ctx: &Ctx, _req: &Request, p: Params) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = super::conn(st).await?;
    let order = my_purchase(&mut c, user, p.id).await?;
    drop(c);
    match order.status.as_str() {
        "pending" => {}
        "expired" => return Err(lapsed()),
        _ => return Err(PageError::Conflict("This order is already paid.".into())),
    }
    page(
        st,
        ctx,
        StatusCode::OK,
        "pay",
        "Pay",
        json!({"order": order_json(&order)}),
    )
}

fn lapsed() -> PageError {
    PageError::Conflict(
        "This order was not paid in time: its copies went back on sale. Buy the book again.".into(),
    )
}

/// Moves the buyer's purchase from status `from` to `to` inside `tx`; false when it was not in
/// `from` (already paid or shipped, or not this buyer's), so each step happens once.
async fn advance(
    tx: &mut mysql_async::Transaction<'_>,
    id: u64,
    user_id: u64,
    from: &str,
    to: &str,
) -> Result<bool, mysql_async::Error> {
    // A pending purchase is payable only while its copies are reserved.
    tx.exec_drop(
        "UPDATE purchases SET status = ? WHERE id = ? AND user_id = ? AND status = ? \
         AND (status <> 'pending' OR reserved_until IS NULL OR reserved_until > NOW())",
        (to, id, user_id, from),
    )
    .await?;
    Ok(tx.affected_rows() == 1)
}

/// `POST /purchases/{id}/pay`: records the payment of the purchase's total, once.
pub async fn pay(st: &State, ctx: &Ctx, form: CsrfChecked<PayForm>, p: Params) -> PageResult {
    let user = ctx.require_user()?;
    let id = p.id;
    let method = form.method.as_deref().unwrap_or("card");
    if !["card", "transfer", "cash"].contains(&method) {
        return Err(PageError::BadRequest(
            "Choose a payment method from the list.".into(),
        ));
    }
    let mut c = super::conn(st).await?;
    let order = my_purchase(&mut c, user, id).await?;
    let mut tx = c.start_transaction(Default::default()).await?;
    if !advance(&mut tx, id, user.id, "pending", "paid").await? {
        tx.rollback().await?;
        return Err(match order.status.as_str() {
            "paid" | "shipped" => PageError::Conflict("This order is already paid.".into()),
            _ => lapsed(),
        });
    }
    // The amount is the purchase's total, whatever the form said.
    tx.exec_drop(
        "INSERT INTO payments (purchase_id, amount_cents, method, status) SELECT id, total_cents, ?, 'paid' FROM purchases WHERE id = ?",
        (method, id),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect(&format!("/purchases/{id}/delivery")))
}

/// `GET /purchases/{id}/delivery`.
pub async fn delivery_page(st: &State, ctx: &Ctx, _req: &Request, p: Params) -> PageResult {
    let user = ctx.require_user()?;
    let id = p.id;
    let mut c = super::conn(st).await?;
    let order = my_purchase(&mut c, user, id).await?;
    match order.status.as_str() {
        "paid" => {}
        "pending" => return Ok(redirect(&format!("/purchases/{id}/pay"))),
        "expired" => return Err(lapsed()),
        _ => {
            return Err(PageError::Conflict(
                "A courier is already on the way for this order.".into(),
            ))
        }
    }
    let providers: Vec<Provider> = c
        .exec(
            "SELECT id, name, coverage, cost_cents FROM delivery_providers ORDER BY id",
            (),
        )
        .await?;
    drop(c);
    let providers: Vec<Value> = providers
        .into_iter()
        .map(|p| json!({"id": p.id, "name": p.name, "coverage": p.coverage, "cost": money(p.cost_cents)}))
        .collect();
    page(
        st,
        ctx,
        StatusCode::OK,
        "delivery",
        "Delivery",
        json!({"order": order_json(&order), "providers": providers}),
    )
}

/// `POST /purchases/{id}/delivery`: assigns a courier to a paid purchase, once.
pub async fn deliver(
    st: &State,
    ctx: &Ctx,
    form: CsrfChecked<DeliveryForm>,
    p: Params,
) -> PageResult {
    let user = ctx.require_user()?;
    let id = p.id;
    let provider = form
        .provider_id
        .parse::<u64>()
        .map_err(|_| PageError::BadRequest("Choose a courier.".into()))?;
    let mut c = super::conn(st).await?;
    my_purchase(&mut c, user, id).await?;
    let known: Option<u64> = c
        .exec_first(
            "SELECT id FROM delivery_providers WHERE id = ?",
            (provider,),
        )
        .await?;
    if known.is_none() {
        return Err(PageError::BadRequest(
            "Choose a courier from the list.".into(),
        ));
    }
    let mut tx = c.start_transaction(Default::default()).await?;
    if !advance(&mut tx, id, user.id, "paid", "shipped").await? {
        tx.rollback().await?;
        return Err(PageError::Conflict(
            "This order must be paid, and not yet shipped, to choose a courier.".into(),
        ));
    }
    tx.exec_drop(
        "INSERT INTO delivery_assignments (purchase_id, provider_id) VALUES (?, ?)",
        (id, provider),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect("/orders?done=shipped"))
}

/// Most orders listed on "My orders" (the page says so when there are more).
pub const ORDERS_SHOWN: usize = 200;

/// `GET /orders`.
pub async fn orders(st: &State, ctx: &Ctx, req: &Request, _p: Params) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = super::conn(st).await?;
    let rows: Vec<OrderLine> = c
        .exec(
            "SELECT p.id, p.book_id, b.title, p.quantity, p.total_cents, p.status, dp.name, \
             DATE_FORMAT(p.reserved_until, '%Y-%m-%d %H:%i:%s') \
             FROM purchases p JOIN books b ON b.id = p.book_id \
             LEFT JOIN delivery_assignments da ON da.purchase_id = p.id \
             LEFT JOIN delivery_providers dp ON dp.id = da.provider_id \
             WHERE p.user_id = ? ORDER BY p.id DESC LIMIT ?",
            (user.id, ORDERS_SHOWN + 1),
        )
        .await?;
    drop(c);
    let mut rows = rows;
    let cut_off = super::cut_off(&mut rows, ORDERS_SHOWN);
    let orders: Vec<Value> = rows
        .into_iter()
        .map(|o| {
            let badge = match o.status.as_str() {
                "pending" => "warning",
                "paid" => "info",
                "expired" => "secondary",
                _ => "success",
            };
            json!({"id": o.id, "book_id": o.book_id, "title": o.title, "quantity": o.quantity,
                   "total": money(o.total_cents), "status": o.status, "badge": badge,
                   "provider": o.provider, "can_pay": o.status == "pending",
                   "can_deliver": o.status == "paid", "reserved_until": o.reserved_until})
        })
        .collect();
    let flash = (req.query_map().get("done").map(String::as_str) == Some("shipped")).then_some((
        "success",
        "Thank you! Your order is paid and a courier is on the way.",
    ));
    page_flash(
        st,
        ctx,
        StatusCode::OK,
        "orders",
        "My orders",
        json!({"orders": orders, "cut_off": cut_off}),
        flash,
    )
}
