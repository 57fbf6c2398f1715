-- Members whose sockets the server closed to restart: the restarted server counts them
-- present for a grace period, so coming back does not announce them again.
CREATE TABLE parked_members (
    room_code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (room_code, user_id)
) STRICT;
