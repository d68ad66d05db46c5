"""Operating a store: backups and restores (``backup``), with the metadata database as rows
(``dbdump``). Key rotation is the store's (``cohort/keyring.py``); checks and recovery are in
``cohort/recovery.py``."""
