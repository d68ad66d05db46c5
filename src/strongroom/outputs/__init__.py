"""Safe outputs: the disclosure check, the differencing ledger, the raw-row scanner, release."""
