-- Full-text search over messages: an FTS5 index of each message's room and text,
-- kept in step by triggers whatever writes the rows (a post, an edit of the text, a
-- deletion, a room deleted with its history), and built here for the messages already
-- stored. The index holds only the words; the text stays in `messages`. Diacritics are
-- kept, so both stores find the same words.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    room_code, body,
    content = 'messages', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);

INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

CREATE TRIGGER messages_fts_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, room_code, body) VALUES (new.id, new.room_code, new.body);
END;

CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, room_code, body)
        VALUES ('delete', old.id, old.room_code, old.body);
END;

CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF room_code, body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, room_code, body)
        VALUES ('delete', old.id, old.room_code, old.body);
    INSERT INTO messages_fts (rowid, room_code, body) VALUES (new.id, new.room_code, new.body);
END;

-- Bots post into one room through the JSON API. Only a hash of each token is kept;
-- revoking a bot deletes its row, and every request looks the token up afresh.
CREATE TABLE bots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX bots_by_room ON bots (room_code, id);
