-- Full-text search over messages: a generated tsvector column (so it follows every
-- insert and every edit of the text, whatever writes the row; a deleted row takes it
-- along) with a GIN index, computed here for the messages already stored. Words are
-- runs of letters and digits, as the SQLite store's tokenizer sees them, lowercased;
-- no stemming, so both stores find the same words.
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', regexp_replace(body, '[^[:alnum:]]+', ' ', 'g'))
) STORED;

CREATE INDEX messages_search ON messages USING gin (search);

-- Bots post into one room through the JSON API. Only a hash of each token is kept;
-- revoking a bot deletes its row, and every request looks the token up afresh.
CREATE TABLE bots (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_code text NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    name text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE INDEX bots_by_room ON bots (room_code, id);
