"""Flags in words for an operator (flipper.operate.text): who made a change, as the audit proves it."""

from __future__ import annotations

from flipper.operate.admin import UNVERIFIED
from flipper.operate.backends import DIRECT
from flipper.operate.text import who


def test_a_claim_is_shown_as_one_and_never_hides_a_proven_actor() -> None:
    assert who({"actor": "arn:aws:iam::1:user/ana"}) == "arn:aws:iam::1:user/ana"
    assert who({"actor": DIRECT, "claimed_by": "ana@laptop"}) == "ana@laptop (claimed)"
    assert who({"actor": UNVERIFIED, "claimed_by": "arn:aws:iam::1:user/ana"}) == "arn:aws:iam::1:user/ana (claimed)"
    # Signed through the operator URL as an intern, the body claiming the CEO: the intern is who it was.
    proven = {"actor": "arn:aws:sts::1:assumed-role/intern/x", "claimed_by": "arn:aws:iam::1:user/ceo"}
    assert who(proven) == "arn:aws:sts::1:assumed-role/intern/x (claims arn:aws:iam::1:user/ceo)"
