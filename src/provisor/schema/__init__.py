"""RFC 7643 schemas as data: the attribute registry, coercion of request bodies, and projection."""
