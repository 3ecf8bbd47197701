-- The shared catalog: readers add the books they shelve, which the shop does not sell. A
-- book without a price is not for sale (only admins set one).
ALTER TABLE books ALTER COLUMN price_cents DROP NOT NULL;
