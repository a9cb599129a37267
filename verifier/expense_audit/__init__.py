"""The rules and their proof: definitions, guards, the state machine, the canonical event form,
Merkle checkpoints and the offline verifier. No database, no web framework, no network."""
