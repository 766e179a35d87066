ALTER TABLE executions DROP COLUMN initiator_subject;
