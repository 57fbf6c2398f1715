"""The live sockets of this process, counted in memory (also `RedisSockets`'s own
counts: its fallback while Redis is away, and what its hash is written back from)."""

from __future__ import annotations

from collections import Counter

from chat.sockets import Claim


class LocalSockets:
    """The sockets of this process, counted in memory."""

    def __init__(self, per_user: int, per_address: int | None) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.users: Counter[str] = Counter()
        self.addresses: Counter[str] = Counter()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def claim(self, user_id: str, address: str) -> Claim | None:
        claim = self.claim_for(user_id, address)
        if not self.fits(claim):
            return None
        self.add(claim)
        return claim

    async def release(self, claim: Claim) -> None:
        self.remove(claim)

    # Used by RedisSockets too ---------------------------------------------------

    def claim_for(self, user_id: str, address: str) -> Claim:
        return Claim(user_id, None if self.per_address is None else address)

    def fits(self, claim: Claim) -> bool:
        if self.users[claim.user_id] >= self.per_user:
            return False
        if claim.address is None or self.per_address is None:
            return True
        return self.addresses[claim.address] < self.per_address

    def add(self, claim: Claim) -> None:
        self.users[claim.user_id] += 1
        if claim.address is not None:
            self.addresses[claim.address] += 1

    def remove(self, claim: Claim) -> None:
        _decrement(self.users, claim.user_id)
        if claim.address is not None:
            _decrement(self.addresses, claim.address)

    def fields(self) -> dict[str, int]:
        """This process's counts as the fields of its Redis hash."""
        counts = {user_field(user): n for user, n in self.users.items()}
        counts.update({address_field(address): n for address, n in self.addresses.items()})
        return counts


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def user_field(user_id: str) -> str:
    return "u:" + user_id


def address_field(address: str | None) -> str:
    return "" if address is None else "a:" + address


