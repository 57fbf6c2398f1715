-- Edits, deletions and reactions. Each change takes the room's next revision and stamps
-- it on the message, so a page catches up on what changed since it was rendered.
ALTER TABLE rooms ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;

CREATE INDEX messages_by_revision ON messages (room_code, revision) WHERE revision > 0;

CREATE TABLE reactions (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    reacted_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) STRICT;

-- Who has been in each room, under which names: what `@Name` mentions.
CREATE TABLE room_names (
    room_code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (room_code, name, user_id)
) STRICT;
