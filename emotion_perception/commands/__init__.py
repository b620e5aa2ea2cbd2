"""Sub-commands of the `emotion-perception` CLI, one module each."""
