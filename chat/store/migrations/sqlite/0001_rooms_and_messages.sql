-- Rooms and their history. Times are milliseconds since the Unix epoch, UTC.
CREATE TABLE rooms (
    code TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    -- when the room last became empty; NULL while someone is in it
    empty_since INTEGER
) STRICT;

CREATE INDEX rooms_by_empty_since ON rooms (empty_since) WHERE empty_since IS NOT NULL;

-- AUTOINCREMENT: ids are never reused, so a reconnecting page's last id stays meaningful.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    author_id TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL
) STRICT;

CREATE INDEX messages_by_room ON messages (room_code, id);
