"""Core: machine types and IDs, errors, small utilities and run provenance; used by every stage, imports none."""
