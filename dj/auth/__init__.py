"""Bearer tokens and roles: artist, listener and stream key in use; product and admin declared."""

from dj.auth.roles import ROLES, Role, RoleError, check_role
from dj.auth.tokens import MIGRATIONS, Principal, TokenInfo, TokenStore, create_token
from dj.auth.web import bearer_token, require

__all__ = [
    "MIGRATIONS", "ROLES", "Principal", "Role", "RoleError", "TokenInfo", "TokenStore",
    "bearer_token", "check_role", "create_token", "require",
]
