"""The HTTP layer: the only part of camgate that knows HTTP."""
