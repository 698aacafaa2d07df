-- A rotation marks the old token (rotated_at, successor) in the same statement that inserts its
-- successor. None of those columns is indexed, so PostgreSQL can update the row in place (a HOT
-- update) when its page has room, instead of adding an entry to each of the table's five
-- indexes. Leaving a quarter of each page free gives the mark that room.
ALTER TABLE refresh_tokens SET (fillfactor = 75);
