"""Everything that speaks the provider's language: request rules, the client, notifications."""
