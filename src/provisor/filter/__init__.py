"""SCIM filters: parse once into an immutable AST, then walk it (bind, evaluate, compile to SQL)."""
