"""What patients and staff text back (contract §7, §10, §12): keywords, check-in replies triaged
and escalated to the clinic's on-call numbers, acknowledgements, opt-outs of one kind.

Every function that touches the database here is a store function of a sync `Session`, run
whole by `storage.transactions.Transactions` (the return path's batch runs many in one)."""
