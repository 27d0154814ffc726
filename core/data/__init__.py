"""Data: what a person brings, checked and versioned before any model sees it.

- datasets: ingest (tables, image folders, zips, server folders) into immutable versions with ids
- tables, archives, images: reading files safely (encodings, delimiters, zip and image bombs)
- audit: class balance, exact and near duplicates, label conflicts, leakage; one-click fixes
- split: the stratified train/validation/test split that keeps duplicate groups together
- rundata: the rows, split and targets of one run
"""
