SELECT value FROM ucache WHERE key = 'page/users/1' AND expires_at > now();
