-- The newest inventory of each agent, one table per section, replaced on
-- each report (a section whose collector failed keeps what was known).
CREATE TABLE agent_inventory (
    pc_id         TEXT    NOT NULL PRIMARY KEY,
    collected_at  BIGINT  NOT NULL,
    received_at   BIGINT  NOT NULL,
    os_name       TEXT    NOT NULL DEFAULT '',
    os_version    TEXT    NOT NULL DEFAULT '',
    os_release    TEXT    NOT NULL DEFAULT '',
    os_build      TEXT    NOT NULL DEFAULT '',
    os_kind       TEXT    NOT NULL DEFAULT '',
    install_date  BIGINT,
    last_boot     BIGINT,
    manufacturer  TEXT    NOT NULL DEFAULT '',
    model         TEXT    NOT NULL DEFAULT '',
    serial_number TEXT    NOT NULL DEFAULT '',
    bios_version  TEXT    NOT NULL DEFAULT '',
    cpu_model     TEXT    NOT NULL DEFAULT '',
    cpu_cores     INTEGER NOT NULL DEFAULT 0,
    cpu_logical   INTEGER NOT NULL DEFAULT 0,
    ram_bytes     BIGINT  NOT NULL DEFAULT 0,
    errors        TEXT    NOT NULL DEFAULT '',
    truncated     BOOLEAN NOT NULL DEFAULT FALSE
);
--bun:split
CREATE TABLE agent_disks (
    pc_id      TEXT   NOT NULL,
    mount      TEXT   NOT NULL,
    device     TEXT   NOT NULL DEFAULT '',
    label      TEXT   NOT NULL DEFAULT '',
    fs         TEXT   NOT NULL DEFAULT '',
    size_bytes BIGINT NOT NULL DEFAULT 0,
    free_bytes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (pc_id, mount)
);
--bun:split
-- ipv4 / ipv6 are comma-separated; agent_ips holds each address for search.
CREATE TABLE agent_nics (
    pc_id TEXT NOT NULL,
    name  TEXT NOT NULL,
    mac   TEXT NOT NULL DEFAULT '',
    ipv4  TEXT NOT NULL DEFAULT '',
    ipv6  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pc_id, name)
);
--bun:split
CREATE TABLE agent_ips (
    pc_id TEXT NOT NULL,
    ip    TEXT NOT NULL,
    PRIMARY KEY (pc_id, ip)
);
--bun:split
CREATE INDEX agent_ips_ip_idx ON agent_ips (ip);
--bun:split
-- Software names are stored once (name_lower is searched: thousands of
-- distinct names rather than millions of rows).
CREATE TABLE software_names (
    id         BIGINT NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    name_lower TEXT   NOT NULL UNIQUE
);
--bun:split
CREATE TABLE agent_software (
    pc_id        TEXT   NOT NULL,
    name_id      BIGINT NOT NULL,
    version      TEXT   NOT NULL DEFAULT '',
    publisher    TEXT   NOT NULL DEFAULT '',
    install_date TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (pc_id, name_id, version)
);
--bun:split
CREATE INDEX agent_software_name_id_idx ON agent_software (name_id);
--bun:split
CREATE TABLE agent_hotfixes (
    pc_id        TEXT NOT NULL,
    id           TEXT NOT NULL,
    installed_on TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (pc_id, id)
);
--bun:split
CREATE INDEX agents_os_idx ON agents (os);
--bun:split
CREATE INDEX agents_agent_version_idx ON agents (agent_version);
