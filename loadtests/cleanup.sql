-- Removes what `bookstore loadtest` wrote to a shop: accounts with e-mails @loadtest.invalid,
-- their purchases (payments and courier choices), and the books they listed (titles start
-- with "[loadtest]"). Stock that load-test shoppers took from real books is given back.
-- Rows that real people depend on stay: a load-test book that someone else bought is withdrawn
-- from sale instead of deleted, and its seller account stays.
--
--   mariadb -h HOST -u USER -p DATABASE < loadtests/cleanup.sql
--
-- First, the cover files of the books about to go (delete them from the uploads directory
-- afterwards; the shop never serves a cover its book no longer names):
SELECT b.cover AS cover_file_to_delete
  FROM books b JOIN users u ON u.id = b.seller_id
 WHERE u.email LIKE '%@loadtest.invalid' AND b.cover IS NOT NULL;

START TRANSACTION;

CREATE TEMPORARY TABLE loadtest_users AS
  SELECT id FROM users WHERE email LIKE '%@loadtest.invalid';
CREATE TEMPORARY TABLE loadtest_purchases AS
  SELECT p.id, p.book_id, p.quantity, p.status
    FROM purchases p JOIN loadtest_users u ON u.id = p.user_id;

-- Give back the stock of real books (not of load-test books, which go).
UPDATE books b
  JOIN (SELECT book_id, SUM(quantity) AS taken FROM loadtest_purchases
         WHERE status NOT IN ('expired', 'cancelled', 'canceled')
         GROUP BY book_id) t ON t.book_id = b.id
   SET b.stock = b.stock + t.taken
 WHERE b.seller_id NOT IN (SELECT id FROM loadtest_users);

DELETE FROM delivery_assignments WHERE purchase_id IN (SELECT id FROM loadtest_purchases);
DELETE FROM payments WHERE purchase_id IN (SELECT id FROM loadtest_purchases);
DELETE FROM purchases WHERE id IN (SELECT id FROM loadtest_purchases);

-- Load-test books someone else bought stay, withdrawn from sale; the rest go.
UPDATE books SET active = FALSE
 WHERE seller_id IN (SELECT id FROM loadtest_users)
   AND id IN (SELECT book_id FROM purchases);
DELETE FROM books
 WHERE seller_id IN (SELECT id FROM loadtest_users)
   AND id NOT IN (SELECT book_id FROM purchases);

-- Accounts go (their sessions with them), unless they still own a book someone bought.
DELETE FROM users
 WHERE id IN (SELECT id FROM loadtest_users)
   AND id NOT IN (SELECT seller_id FROM books);

DROP TEMPORARY TABLE loadtest_purchases;
DROP TEMPORARY TABLE loadtest_users;
COMMIT;
