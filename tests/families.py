"""The families the tests iterate, derived from the anatomy's table: a new family's one
register(Family(...)) puts it through every family test."""

from interplab.anatomy import FAMILIES

# Every registered family with a tiny config, in registration order.
ALL_FAMILIES = [name for name, family in FAMILIES.items() if family.tiny is not None]
DENSE_FAMILIES = [name for name in ALL_FAMILIES if not FAMILIES[name].is_moe]
MOE_FAMILIES = [name for name in ALL_FAMILIES if FAMILIES[name].is_moe]
