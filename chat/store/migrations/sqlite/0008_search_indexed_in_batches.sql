-- New messages reach the search index in batches instead of one by one in their own
-- commit: an FTS5 insert per commit cost more than the message's own row. `indexed_upto`
-- is the newest message id the index holds. The writer indexes what came after it
-- every second and before every search, so search still finds every stored message.
-- Edits and deletions change the index only for messages already in it (FTS5 must
-- never be asked to delete what it does not hold); a later batch indexes the rest as
-- they are then.
CREATE TABLE search_index (
    indexed_upto INTEGER NOT NULL
) STRICT;

INSERT INTO search_index (indexed_upto) SELECT coalesce(max(id), 0) FROM messages;

DROP TRIGGER messages_fts_after_insert;
DROP TRIGGER messages_fts_after_delete;
DROP TRIGGER messages_fts_after_update;

CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages
WHEN old.id <= (SELECT indexed_upto FROM search_index) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, room_code, body)
        VALUES ('delete', old.id, old.room_code, old.body);
END;

CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF room_code, body ON messages
WHEN old.id <= (SELECT indexed_upto FROM search_index) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, room_code, body)
        VALUES ('delete', old.id, old.room_code, old.body);
    INSERT INTO messages_fts (rowid, room_code, body) VALUES (new.id, new.room_code, new.body);
END;
