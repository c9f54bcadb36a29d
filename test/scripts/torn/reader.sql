-- a value is whole when it is its own length (7 digits) followed by that
-- many times the letter that length picks; anything else is a torn read
INSERT INTO torn_bad
SELECT i % 4, v FROM generate_series(1, 50) i, LATERAL (SELECT cache_get('torn:' || (i % 4)) AS v) g
WHERE v IS NOT NULL
  AND CASE WHEN v ~ '^[0-9]{7}[a-z]*$'
           THEN v <> left(v, 7) || repeat(chr(97 + left(v, 7)::int % 26), left(v, 7)::int)
           ELSE true END;
