-- Members whose sockets the server closed to restart: the restarted server counts them
-- present for a grace period, so coming back does not announce them again.
CREATE TABLE parked_members (
    room_code text NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    user_id text NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (room_code, user_id)
);
