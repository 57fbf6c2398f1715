"""Every text a person reads that the server writes: form errors, refusals, notices in
the room and the JSON API's reasons. One place, so wording changes in one place and
the tests can name the exact text a user sees."""

from __future__ import annotations

NAME_MAX = 32

# Forms and room rules --------------------------------------------------------------
NAME_MISSING = "Please enter a name."
CODE_MISSING = "Please enter a room code."
ROOM_MISSING = "Room does not exist."
ROOM_FULL = "Room is full."
NAME_TOO_LONG = f"Names can be at most {NAME_MAX} characters."
NAME_UNPRINTABLE = "Names cannot contain control or invisible formatting characters."
MESSAGE_EMPTY = "Please type a message."
MESSAGE_UNPRINTABLE = "Messages cannot contain control characters other than line breaks."
REACTION_UNKNOWN = "Please pick one of the offered reactions."
FORM_EXPIRED = "This form has expired. Please try again."
FORM_UNREADABLE = "The form could not be read. Please try again."


def message_too_long(longest: int) -> str:
    return f"Messages can be at most {longest:,} characters."


# Rate limits -------------------------------------------------------------------------
SLOW_DOWN = "You are sending messages too quickly. Please wait a moment."
TOO_MANY_JOINS = "Too many attempts to join. Please wait a minute and try again."
TOO_MANY_ROOMS = "You have created many rooms in a short time. Please wait a minute."

# Changing a message ----------------------------------------------------------------
NOT_YOURS = "Only its author can change a message."
MESSAGE_MISSING = "That message does not exist (or was deleted)."

# Bots --------------------------------------------------------------------------------
BOTS_PER_ROOM = 20
TOO_MANY_BOTS = f"A room can have at most {BOTS_PER_ROOM} bots. Revoke one first."
NO_SUCH_BOT = "There is no such bot in this room."

# Notices in the room -----------------------------------------------------------------


def entered(name: str) -> str:
    return f"{name} has entered the room"


def left(name: str) -> str:
    return f"{name} has left the room"


def renamed(old: str, new: str) -> str:
    return f"{old} is now {new}"


def room_lifetime(seconds: float) -> str:
    """What the room page says about deleting empty rooms (CHAT_EMPTY_ROOM_TTL)."""
    if seconds <= 0:
        return "Rooms are deleted as soon as everyone has left."
    amount, unit = round(seconds), "second"
    for name, size in (("minute", 60), ("hour", 3600), ("day", 86400)):
        if seconds >= size:
            amount, unit = round(seconds / size), name
    plural = "" if amount == 1 else "s"
    return f"Rooms are deleted {amount} {unit}{plural} after everyone has left."


# Close reasons of a refused live socket (read in the browser's console) ---------------
NO_SESSION = "no session"
FOREIGN_ORIGIN = "foreign origin"
TOO_MANY_UNKNOWN_ROOMS = "too many unknown rooms"
TOO_MANY_CONNECTIONS = "too many connections"

# The JSON API's reasons ----------------------------------------------------------------
API_NO_TOKEN = "Send the bot's token: Authorization: Bearer <token>."
API_UNKNOWN_TOKEN = "This token is unknown or was revoked."
API_OTHER_ROOM = "This token belongs to a bot of another room."
API_BEFORE_AND_AFTER = "Give before or after, not both."
API_SCHEMA_MISMATCH = "The request does not match the schema."
API_NOT_JSON = "The body is not valid JSON."
