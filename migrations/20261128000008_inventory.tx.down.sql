DROP INDEX agents_agent_version_idx;
--bun:split
DROP INDEX agents_os_idx;
--bun:split
DROP TABLE agent_hotfixes;
--bun:split
DROP TABLE agent_software;
--bun:split
DROP TABLE software_names;
--bun:split
DROP TABLE agent_ips;
--bun:split
DROP TABLE agent_nics;
--bun:split
DROP TABLE agent_disks;
--bun:split
DROP TABLE agent_inventory;
