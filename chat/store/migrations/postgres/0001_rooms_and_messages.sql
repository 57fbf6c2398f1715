-- Rooms and their history. Times are timestamptz, kept to the millisecond like SQLite's.
CREATE TABLE rooms (
    code text PRIMARY KEY,
    created_at timestamptz NOT NULL,
    -- when the room last became empty; NULL while someone is in it
    empty_since timestamptz
);

CREATE INDEX rooms_by_empty_since ON rooms (empty_since) WHERE empty_since IS NOT NULL;

-- An identity column draws from a sequence: ids are never reused, so a reconnecting
-- page's last id stays meaningful.
CREATE TABLE messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_code text NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    author_id text NOT NULL,
    author text NOT NULL,
    body text NOT NULL,
    sent_at timestamptz NOT NULL
);

CREATE INDEX messages_by_room ON messages (room_code, id);
