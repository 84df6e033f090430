"""The browser side of camgate: the player page and its static files (served from ``static/``).

Only files live here; the HTTP routes that serve them belong to ``camgate.api``.
"""
