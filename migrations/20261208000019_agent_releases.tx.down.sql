DROP TABLE agent_releases;
