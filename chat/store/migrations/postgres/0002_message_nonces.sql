-- A message may carry the nonce its page gave it: the same nonce from the same user in
-- the same room posts nothing new (a frame resent after a reconnect, a retried POST).
ALTER TABLE messages ADD COLUMN nonce text;

CREATE UNIQUE INDEX messages_by_nonce ON messages (room_code, author_id, nonce)
    WHERE nonce IS NOT NULL;
