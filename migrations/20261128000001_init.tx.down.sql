DROP TABLE IF EXISTS results;
--bun:split
DROP TABLE IF EXISTS executions;
--bun:split
DROP TABLE IF EXISTS agent_groups;
--bun:split
DROP TABLE IF EXISTS agents;
