ALTER TABLE clips DROP COLUMN broken_flag;
