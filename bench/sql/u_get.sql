\set id random(0, 9999)
SELECT value FROM ucache WHERE key = 'k:' || :id AND expires_at > now();
