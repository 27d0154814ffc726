"""The one-file HTML report of a run for a domain expert (html), built from parts (parts)."""
