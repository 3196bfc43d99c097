"""Built-in environments: one folder per environment holding ``env.yaml``/``env.json`` (and its backend)."""
