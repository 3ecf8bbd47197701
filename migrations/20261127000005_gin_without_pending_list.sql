-- The catalog is read far more than it is written. GIN's fast-update mode parks new
-- entries in a pending list that every search scans linearly until a vacuum merges it:
-- right after 10,000 books were added, searching one word took 3.8 ms in the index alone
-- (0.07 ms once merged) and the planner preferred a sequential scan. Without the pending
-- list each insert updates the index directly (slightly slower writes, steady reads).
ALTER INDEX books_search_idx SET (fastupdate = off);
ALTER INDEX books_authors_ci_idx SET (fastupdate = off);
ALTER INDEX books_tags_idx SET (fastupdate = off);
-- Whatever is pending now is merged once, here.
SELECT gin_clean_pending_list('books_search_idx'::regclass);
SELECT gin_clean_pending_list('books_authors_ci_idx'::regclass);
SELECT gin_clean_pending_list('books_tags_idx'::regclass);
