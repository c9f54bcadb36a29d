-- bursts of sets that replace values by ones of other lengths: the old
-- blocks go back to the free stack and the next set reuses them at once,
-- possibly under a reader still copying them; now and then a delete
\set d random(1, 10)
\if :d = 1
SELECT cache_delete('torn:' || :d);
\else
SELECT count(cache_set('torn:' || (i % 4), lpad(n::text, 7, '0') || repeat(chr(97 + n % 26), n), 0))
-- (+ i % 1: a length per row, not one for the statement)
FROM generate_series(1, 50) i, LATERAL (SELECT (random() * 60000)::int + i % 1 AS n) len;
\endif
