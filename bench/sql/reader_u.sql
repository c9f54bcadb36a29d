\set id random(1, 80000)
SELECT value FROM inv WHERE key = 'q:' || :id AND expires_at > now();
