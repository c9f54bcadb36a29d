\set id random(0, 9999)
INSERT INTO ucache VALUES ('k:' || :id, 'user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value user profile cache value ', now() + interval '1 hour') ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at;
