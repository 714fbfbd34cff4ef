"""Who may do what with a flag. Everyone sees only their own clinic's flags (another clinic's is "not found").

| action         | coordinator | physician | admin |
|----------------|-------------|-----------|-------|
| view, note     | yes         | yes       | yes   |
| acknowledge    | no          | yes       | yes   |
| message patient| no          | yes       | yes   |
| book visit     | no          | yes       | yes   |
| resolve        | no          | yes       | yes   |

Every flag is clinical (it comes from a red-flag rule), so coordinators follow it and add notes (what the
patient said on the phone, a callback number) but acknowledging, messaging about it, booking the urgent visit
and resolving belong to clinicians.
"""

from __future__ import annotations

from enum import StrEnum

from aftercare.models import Role, StaffUser


class Action(StrEnum):
    view = "view"
    note = "note"
    acknowledge = "acknowledge"
    message = "message"
    book_visit = "book_visit"
    resolve = "resolve"


CLINICIANS = frozenset({Role.physician, Role.admin})
EVERYONE = frozenset(Role)
ALLOWED: dict[Action, frozenset[Role]] = {
    Action.view: EVERYONE,
    Action.note: EVERYONE,
    Action.acknowledge: CLINICIANS,
    Action.message: CLINICIANS,
    Action.book_visit: CLINICIANS,
    Action.resolve: CLINICIANS,
}
_WORDS = {
    Action.acknowledge: "acknowledge flags",
    Action.message: "message a patient about a flag",
    Action.book_visit: "book an urgent visit from a flag",
    Action.resolve: "resolve flags",
    Action.note: "add notes to flags",
    Action.view: "see flags",
}


class NotAllowed(PermissionError):
    """The staff member's role may not do this; the message says so in words."""

    def __init__(self, staff: StaffUser, action: Action) -> None:
        self.action = action
        super().__init__(f"a {staff.role.value} cannot {_WORDS[action]}; ask a physician")


def allowed(staff: StaffUser, action: Action) -> bool:
    return staff.role in ALLOWED[action]


def require(staff: StaffUser, action: Action) -> None:
    if not allowed(staff, action):
        raise NotAllowed(staff, action)
