-- Edits, deletions and reactions. Each change takes the room's next revision and stamps
-- it on the message, so a page catches up on what changed since it was rendered.
ALTER TABLE rooms ADD COLUMN revision bigint NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN revision bigint NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN edited_at timestamptz;
ALTER TABLE messages ADD COLUMN deleted_at timestamptz;

CREATE INDEX messages_by_revision ON messages (room_code, revision) WHERE revision > 0;

CREATE TABLE reactions (
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji text NOT NULL,
    user_id text NOT NULL,
    name text NOT NULL,
    reacted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, emoji, user_id)
);

-- Who has been in each room, under which names: what `@Name` mentions.
CREATE TABLE room_names (
    room_code text NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    name text NOT NULL,
    user_id text NOT NULL,
    PRIMARY KEY (room_code, name, user_id)
);
