ALTER TABLE agents DROP COLUMN logged_on_user;
