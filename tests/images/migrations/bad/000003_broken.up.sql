-- A broken release: the first statement works, the second fails, so nothing of it may stay.
ALTER TABLE clips ADD COLUMN broken_flag boolean;
ALTER TABLE no_such_table ADD COLUMN views bigint;
