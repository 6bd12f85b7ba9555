-- Unpaid orders hold their copies until reserved_until; then they expire and the stock returns.
ALTER TABLE purchases ADD COLUMN reserved_until DATETIME NULL;
UPDATE purchases SET reserved_until = created_at + INTERVAL 30 MINUTE WHERE status = 'pending';
CREATE INDEX purchases_pending ON purchases (status, reserved_until);
-- Expired throttle windows are deleted in batches by this index.
CREATE INDEX login_failures_window ON login_failures (window_start);
